// FGSM (docs/method.md §5): x' = clip01(x + ε·sign(∇ₓ CE_mean)). `eot` > 1: the gradient is the
// mean over that many stochastic forwards (./eot.ts).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { ceMean, oneHot } from './common';
import { Eot, eotInputGrad, eotParam, withEotExtra } from './eot';
import { defineAttack, epsParam } from './params';

const schema = z.object({ eps: epsParam(0.03), eot: eotParam() }).strict();
export type FgsmParams = z.output<typeof schema>;

export const fgsm = defineAttack<FgsmParams>({
  name: 'fgsm',
  description: 'Fast gradient sign method, one L∞ step of size ε (Goodfellow et al. 2015)',
  norm: 'linf',
  schema,
  attack: (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    const yOh = oneHot(y, ctx.target.numClasses);
    const g = eotInputGrad(eot, (logits) => ceMean(logits, yOh), x);
    const xAdv = tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(tf.sign(g), p.eps)), 0, 1) as tf.Tensor4D);
    tf.dispose([yOh, g]);
    return withEotExtra({ xAdv }, eot);
  },
});
