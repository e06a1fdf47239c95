// NI-FGSM (method.md §5; Lin et al. 2020, torchattacks NIFGSM): no random start, g₀ = 0;
// each step x̃ = x_t + decay·α·g, ∇ = ∇ₓ CE_mean(x̃) (taken w.r.t. x_t, the same thing),
// g ← decay·g + ∇/mean|∇| (mean per example over all pixels), x_{t+1} = proj(x_t + α·sign g).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { ceMean, inputGrad, oneHot, projectLinf, swap } from './common';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt, stepParam } from './params';

const schema = z
  .object({
    eps: epsParam(0.03),
    alpha: stepParam().default(2 / 255),
    steps: posInt(10),
    decay: z.number().min(0).finite().default(1.0),
  })
  .strict();
export type NifgsmParams = z.output<typeof schema>;

export const nifgsm = defineAttack<NifgsmParams>({
  name: 'nifgsm',
  description: 'Nesterov iterative FGSM: look-ahead gradient with momentum, L∞ (Lin et al. 2020)',
  norm: 'linf',
  schema,
  attack: async ({ target, yieldPoint = noYield }, x, y, p) => {
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
      const [nextAdv, nextMom] = tf.tidy(() => {
        const lookahead = tf.add(adv, tf.mul(mom, p.decay * p.alpha)) as tf.Tensor4D;
        const g = inputGrad((xi) => ceMean(target.logits(xi), yOh), lookahead);
        // A vanishing gradient (saturated softmax) would make the reference divide 0 by 0
        // (NaN); we add nothing for that example instead.
        const meanAbs = tf.mean(tf.abs(g), [1, 2, 3], true);
        const safe = tf.where(tf.equal(meanAbs, 0), tf.onesLike(meanAbs), meanAbs);
        const m = tf.add(tf.mul(mom, p.decay), tf.div(g, safe)) as tf.Tensor4D;
        return [projectLinf(tf.add(adv, tf.mul(tf.sign(m), p.alpha)) as tf.Tensor4D, x, p.eps), m];
      });
      adv = swap(adv, nextAdv);
      mom = swap(mom, nextMom);
    }
    tf.dispose([mom, yOh]);
    return { xAdv: adv };
  },
});
