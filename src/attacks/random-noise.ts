// Random noise in the L∞ ε-ball: `draws` independent uniform perturbations per example, the
// first that is misclassified kept (the rows still correct get the next draw). No gradients,
// no model knowledge: a baseline every real attack must beat. The gradient-masking diagnostics
// use it (a defence that falls to noise more easily than to PGD hides its gradients).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { uniformTensor } from './common';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt } from './params';
import { attackRobustRows } from './robust-rows';

const schema = z
  .object({
    eps: epsParam(0.03),
    draws: posInt(100),
  })
  .strict();
export type RandomNoiseParams = z.output<typeof schema>;

export const randomNoise = defineAttack<RandomNoiseParams>({
  name: 'noise',
  description: 'Uniform random noise in the L∞ ε-ball, best of `draws` per example (a baseline; no gradients)',
  norm: 'linf',
  schema,
  attack: async ({ target, rng, yieldPoint = noYield }, x, y, p) => {
    const draw = async (xs: tf.Tensor4D) => {
      await yieldPoint();
      return { xAdv: tf.tidy(() => tf.clipByValue(tf.add(xs, uniformTensor(rng, xs.shape, -p.eps, p.eps)), 0, 1) as tf.Tensor4D) };
    };
    const res = await attackRobustRows(target, x, y, new Array(p.draws).fill(draw));
    return { xAdv: res.xAdv, queries: p.draws };
  },
});
