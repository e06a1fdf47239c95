// FGSM (method.md §5): x' = clip01(x + ε·sign(∇ₓ CE_mean)).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { ceMean, inputGrad, oneHot } from './common';
import { defineAttack, epsParam } from './params';

const schema = z.object({ eps: epsParam(0.03) }).strict();
export type FgsmParams = z.output<typeof schema>;

export const fgsm = defineAttack<FgsmParams>({
  name: 'fgsm',
  description: 'Fast gradient sign method, one L∞ step of size ε (Goodfellow et al. 2015)',
  norm: 'linf',
  schema,
  attack: ({ target }, x, y, p) => {
    const xAdv = tf.tidy(() => {
      const yOh = oneHot(y, target.numClasses);
      const g = inputGrad((xi) => ceMean(target.logits(xi), yOh), x);
      return tf.clipByValue(tf.add(x, tf.mul(tf.sign(g), p.eps)), 0, 1) as tf.Tensor4D;
    });
    return { xAdv };
  },
});
