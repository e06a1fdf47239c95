// PGD-L2 (torchattacks PGDL2 semantics): random start δ = r·ε·n/‖n‖, n ~ N(0, I),
// r ~ U(0, 1) per example, clip01; each step x ← x + α·g/(‖g‖ + 1e-10) with g = ∇ CE_mean,
// then δ ← δ·min(ε/‖δ‖, 1) and clip01. Defaults are torchattacks' (ε 1.0, α 0.2, 10 steps).
// `eot` > 1: each gradient is the mean over that many stochastic forwards (./eot.ts).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { ceMean, normalTensor, oneHot, projectL2, swap } from './common';
import { Eot, eotInputGrad, eotParam, withEotExtra } from './eot';
import { noYield } from './interrupt';
import { defineAttack, l2EpsParam, posInt, stepParam } from './params';

const schema = z
  .object({
    eps: l2EpsParam(1.0),
    alpha: stepParam().default(0.2),
    steps: posInt(10),
    randomStart: z.boolean().default(true),
    eot: eotParam(),
  })
  .strict();
export type PgdL2Params = z.output<typeof schema>;

export const pgdL2 = defineAttack<PgdL2Params>({
  name: 'pgd-l2',
  description: 'Projected gradient descent in the L2 ball, normalised-gradient steps (torchattacks PGDL2)',
  norm: 'l2',
  schema,
  attack: async (ctx, x, y, p) => {
    const { target, rng, yieldPoint = noYield } = ctx;
    const eot = Eot.of(ctx, p.eot);
    const yOh = oneHot(y, target.numClasses);
    const n = x.shape[0];
    let adv = p.randomStart
      ? tf.tidy(() => {
          const noise = normalTensor(rng, x.shape);
          const norms = tf.sqrt(tf.sum(tf.square(noise), [1, 2, 3], true));
          const r = tf.tensor(Float32Array.from({ length: n }, () => rng.next()), [n, 1, 1, 1]);
          return tf.clipByValue(tf.add(x, tf.mul(tf.div(noise, norms), tf.mul(r, p.eps))), 0, 1) as tf.Tensor4D;
        })
      : tf.clone(x);
    for (let i = 0; i < p.steps; i++) {
      try {
        await yieldPoint();
      } catch (err) {
        tf.dispose([adv, yOh]);
        throw err;
      }
      const g = eotInputGrad(eot, (logits) => ceMean(logits, yOh), adv);
      const next = tf.tidy(() => {
        const gNorm = tf.add(tf.sqrt(tf.sum(tf.square(g), [1, 2, 3], true)), 1e-10);
        return projectL2(tf.add(adv, tf.mul(tf.div(g, gNorm), p.alpha)) as tf.Tensor4D, x, p.eps);
      });
      g.dispose();
      adv = swap(adv, next);
    }
    yOh.dispose();
    return withEotExtra({ xAdv: adv }, eot);
  },
});
