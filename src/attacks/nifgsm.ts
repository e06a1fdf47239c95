// NI-FGSM (docs/method.md §5; Lin et al. 2020, torchattacks NIFGSM): no random start, g₀ = 0;
// each step x̃ = x_t + decay·α·g, ∇ = ∇ₓ CE_mean(x̃) (taken w.r.t. x_t, the same thing),
// g ← decay·g + ∇/mean|∇| (mean per example over all pixels), x_{t+1} = proj(x_t + α·sign g).
// `eot` > 1: ∇ is the mean over that many stochastic forwards (./eot.ts).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { ceMean, oneHot, projectLinf, swap } from './common';
import { Eot, eotInputGrad, eotParam, withEotExtra } from './eot';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt, stepParam } from './params';

const schema = z
  .object({
    eps: epsParam(0.03),
    alpha: stepParam().default(2 / 255),
    steps: posInt(10),
    decay: z.number().min(0).finite().default(1.0),
    eot: eotParam(),
  })
  .strict();
export type NifgsmParams = z.output<typeof schema>;

export const nifgsm = defineAttack<NifgsmParams>({
  name: 'nifgsm',
  description: 'Nesterov iterative FGSM: look-ahead gradient with momentum, L∞ (Lin et al. 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const { target, yieldPoint = noYield } = ctx;
    const eot = Eot.of(ctx, p.eot);
    const yOh = oneHot(y, target.numClasses);
    let adv = tf.clone(x);
    let mom: tf.Tensor4D = tf.zerosLike(x);
    for (let i = 0; i < p.steps; i++) {
      try {
        await yieldPoint();
      } catch (err) {
        tf.dispose([adv, mom, yOh]);
        throw err;
      }
      const lookahead = tf.tidy(() => tf.add(adv, tf.mul(mom, p.decay * p.alpha)) as tf.Tensor4D);
      const g = eotInputGrad(eot, (logits) => ceMean(logits, yOh), lookahead);
      lookahead.dispose();
      const [nextAdv, nextMom] = tf.tidy(() => {
        // A vanishing gradient (saturated softmax) would make the reference divide 0 by 0
        // (NaN); we add nothing for that example instead.
        const meanAbs = tf.mean(tf.abs(g), [1, 2, 3], true);
        const safe = tf.where(tf.equal(meanAbs, 0), tf.onesLike(meanAbs), meanAbs);
        const m = tf.add(tf.mul(mom, p.decay), tf.div(g, safe)) as tf.Tensor4D;
        return [projectLinf(tf.add(adv, tf.mul(tf.sign(m), p.alpha)) as tf.Tensor4D, x, p.eps), m];
      });
      g.dispose();
      adv = swap(adv, nextAdv);
      mom = swap(mom, nextMom);
    }
    tf.dispose([mom, yOh]);
    return withEotExtra({ xAdv: adv }, eot);
  },
});
