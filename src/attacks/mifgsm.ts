// MI-FGSM (Dong et al. 2018, "Boosting Adversarial Attacks with Momentum"), torchattacks
// 3.3.0 semantics (MIFGSM.forward): no random start, g₀ = 0; each step
//   ∇ = ∇ₓ CE_mean(f(x_t)),  g ← ∇/mean|∇| + decay·g  (mean per example over all pixels),
//   x_{t+1} = clip01(x + clip(x_t + α·sign g − x, ±ε)).
// A transfer attack: the gradients come from `ctx.surrogate` when the evaluator gives one
// (`--surrogate RUN_DIR`), else from the target itself (white-box). A vanishing gradient
// (saturated softmax) would make the reference divide 0 by 0; that example adds nothing.
// The loop is shared with DI-FGSM (./difgsm.ts), which transforms the input before each forward.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { ceMean, inputGrad, oneHot, projectLinf, swap, uniformTensor } from './common';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt, stepParam } from './params';
import type { AttackContext } from './types';

const schema = z
  .object({
    eps: epsParam(8 / 255),
    alpha: stepParam().default(2 / 255),
    steps: posInt(10),
    decay: z.number().min(0).finite().default(1.0),
  })
  .strict();
export type MifgsmParams = z.output<typeof schema>;

export interface MomentumOptions {
  eps: number;
  alpha: number;
  steps: number;
  decay: number;
  /** Start from clip01(x + U(−ε, ε)) (DI-FGSM's random_start). */
  randomStart?: boolean;
  /**
   * Called once per step before the forward (DI-FGSM's random input diversity): the map
   * applied to the iterate before the surrogate sees it, or null for none. Draws from `rng`.
   */
  transform?: (rng: Rng, x: tf.Tensor4D) => ((xa: tf.Tensor4D) => tf.Tensor4D) | null;
}

/** The momentum iterative loop of MI-FGSM / DI-FGSM on ctx.surrogate ?? ctx.target. */
export async function momentumIterative(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, o: MomentumOptions): Promise<tf.Tensor4D> {
  const model = ctx.surrogate ?? ctx.target;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const yOh = oneHot(y, model.numClasses);
  let adv = o.randomStart
    ? tf.tidy(() => tf.clipByValue(tf.add(x, uniformTensor(ctx.rng, x.shape, -o.eps, o.eps)), 0, 1) as tf.Tensor4D)
    : tf.clone(x);
  let mom: tf.Tensor4D = tf.zerosLike(x);
  try {
    for (let i = 0; i < o.steps; i++) {
      await yieldPoint();
      const t = o.transform?.(ctx.rng, adv) ?? null;
      const [nextAdv, nextMom] = tf.tidy(() => {
        const g = inputGrad((xi) => ceMean(model.logits(t ? t(xi) : xi), yOh), adv);
        const meanAbs = tf.mean(tf.abs(g), [1, 2, 3], true);
        const safe = tf.where(tf.equal(meanAbs, 0), tf.onesLike(meanAbs), meanAbs);
        const m = tf.add(tf.div(g, safe), tf.mul(mom, o.decay)) as tf.Tensor4D;
        return [projectLinf(tf.add(adv, tf.mul(tf.sign(m), o.alpha)) as tf.Tensor4D, x, o.eps), m];
      });
      adv = swap(adv, nextAdv);
      mom = swap(mom, nextMom);
    }
  } catch (err) {
    adv.dispose();
    throw err;
  } finally {
    tf.dispose([mom, yOh]);
  }
  return adv;
}

export const mifgsm = defineAttack<MifgsmParams>({
  name: 'mifgsm',
  description: 'Momentum iterative FGSM, L∞, transfer attack: crafted on --surrogate if given, else white-box (Dong et al. 2018)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await momentumIterative(ctx, x, y, p) }),
});
