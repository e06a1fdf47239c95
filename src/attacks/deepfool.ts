// DeepFool (Moosavi-Dezfooli et al. 2016) in torchattacks 3.3.0 semantics (DeepFool.forward /
// _forward_indiv): per example, up to `steps` times while the current point x_t is still
// classified as y:
//   f'_k = z_k − z_y,  w'_k = ∇z_k − ∇z_y  at x_t, for every k ≠ y (full Jacobian),
//   l = argmin_k |f'_k| / ‖w'_k‖₂ (first minimum in class order),
//   x_{t+1} = clip01(x_t + (1 + overshoot)·|f'_l|·w'_l / ‖w'_l‖₂²).
// The overshoot is applied to each step from the current point (torchattacks), not to the
// accumulated perturbation from x as in the paper's Algorithm 2. An example stops as soon as
// its current point is misclassified; examples misclassified from the start are not attacked.
// norm 'Linf' is the paper's ℓ∞ case (§3.2, q = 1): l = argmin |f'_k|/‖w'_k‖₁ and the step
// (1 + overshoot)·|f'_l|/‖w'_l‖₁·sign(w'_l), with the same per-step overshoot and clipping.
//
// The Jacobian costs one backward pass per class per step (tf.grad of Σ_i (z_ik − z_iy_i),
// which gives w'_k for every row at once; PyTorch retains the graph instead), streamed over
// classes so memory stays O(batch·pixels); plus one forward per step for the decisions.
//
// Result convention (./min-norm.ts): `distances` = ‖x_T − x‖ in the attack's norm where the
// final point x_T is misclassified, +∞ where it is not (0 for examples already misclassified).
// With `eps` unset the output is torchattacks' (the last iterate of every row, fooled or not);
// with `eps` set a row comes back as x unless x_T fools the model within eps.
import { z } from 'zod';
import { tf } from '../engine/tf';
import { gatherRows, mergeRows, predict, readTidy, swap } from './common';
import { noYield } from './interrupt';
import { distanceNorm, lpNorm, minNormEpsParam, runMinNorm } from './min-norm';
import { checkLinfBudget, defineAttack, posInt } from './params';
import type { AttackContext } from './types';

const schema = z
  .object({
    norm: z.enum(['L2', 'Linf']).default('L2'),
    /** Budget of the reported robust accuracy (./min-norm.ts); absent: torchattacks' output. */
    eps: minNormEpsParam(),
    steps: posInt(50),
    overshoot: z.number().min(0).finite().default(0.02),
  })
  .strict()
  .superRefine(checkLinfBudget);
export type DeepFoolParams = z.output<typeof schema>;

/** One DeepFool step for every row of xs (all still correctly classified): the next points. */
function deepfoolStep(ctx: Pick<AttackContext, 'target'>, xs: tf.Tensor4D, ys: Int32Array, norm: 'L2' | 'Linf', overshoot: number): tf.Tensor4D {
  const { target } = ctx;
  const K = target.numClasses;
  const n = xs.shape[0];
  return tf.tidy(() => {
    const yIdx = tf.tensor1d(ys, 'int32');
    const yOh = tf.cast(tf.oneHot(yIdx, K), 'float32');
    const logits = target.logits(xs);
    const zy = tf.sum(tf.mul(logits, yOh), 1);
    let best = tf.fill([n], Infinity) as tf.Tensor1D;
    let bestF = tf.zeros([n]) as tf.Tensor1D;
    let bestW = tf.zerosLike(xs) as tf.Tensor4D;
    for (let k = 0; k < K; k++) {
      const next = tf.tidy(() => {
        const col = tf.cast(tf.oneHot(tf.fill([n], k, 'int32'), K), 'float32');
        const seed = tf.sub(col, yOh);
        const w = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(seed, target.logits(xi as tf.Tensor4D))))(xs) as tf.Tensor4D;
        const f = tf.sub(tf.sum(tf.mul(logits, col), 1), zy);
        const wn = lpNorm(w, norm === 'L2' ? 'L2' : 'L1');
        // The true class never competes (torchattacks drops it from the candidates).
        const value = tf.where(tf.equal(yIdx, k), tf.fill([n], Infinity), tf.div(tf.abs(f), wn));
        const better = tf.less(value, best);
        return [
          tf.where(better, value, best),
          tf.where(better, f, bestF),
          tf.where(tf.reshape(better, [-1, 1, 1, 1]), w, bestW),
        ] as [tf.Tensor1D, tf.Tensor1D, tf.Tensor4D];
      });
      tf.dispose([best, bestF, bestW]);
      [best, bestF, bestW] = next;
    }
    const absF = tf.reshape(tf.abs(bestF), [-1, 1, 1, 1]);
    const r =
      norm === 'L2'
        ? tf.div(tf.mul(absF, bestW), tf.reshape(tf.square(lpNorm(bestW, 'L2')), [-1, 1, 1, 1]))
        : tf.mul(tf.div(absF, tf.reshape(lpNorm(bestW, 'L1'), [-1, 1, 1, 1])), tf.sign(bestW));
    return tf.clipByValue(tf.add(xs, tf.mul(r, 1 + overshoot)), 0, 1) as tf.Tensor4D;
  });
}

/** DeepFool on a batch: the last iterates and, per row, the distance of a fooling last iterate (+∞ otherwise). */
export async function deepfoolRun(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, labels: Int32Array, p: Pick<DeepFoolParams, 'norm' | 'steps' | 'overshoot'>): Promise<{ xAdv: tf.Tensor4D; dist: Float32Array }> {
  const yieldPoint = ctx.yieldPoint ?? noYield;
  let adv = tf.clone(x);
  try {
    let active = Array.from({ length: labels.length }, (_, i) => i);
    for (let step = 0; step < p.steps && active.length > 0; step++) {
      await yieldPoint();
      const xs = gatherRows(adv, active);
      try {
        const pred = await predict(ctx.target, xs);
        const still = active.filter((i, j) => pred[j] === labels[i]);
        if (still.length > 0) {
          const rows = still.map((i) => active.indexOf(i));
          const sub = gatherRows(xs, rows);
          const moved = deepfoolStep(ctx, sub, Int32Array.from(still, (i) => labels[i]), p.norm, p.overshoot);
          sub.dispose();
          adv = swap(adv, mergeRows(adv, moved, still));
          moved.dispose();
        }
        active = still;
      } finally {
        xs.dispose();
      }
    }
    const [pred, d] = await Promise.all([predict(ctx.target, adv), readTidy(() => lpNorm(tf.sub(adv, x), p.norm))]);
    const dist = Float32Array.from(d, (v, i) => (pred[i] !== labels[i] ? v : Infinity));
    return { xAdv: adv, dist };
  } catch (err) {
    adv.dispose();
    throw err;
  }
}

export const deepfool = defineAttack<DeepFoolParams>({
  name: 'deepfool',
  description: 'DeepFool, L2 (or L∞): step to the linearised nearest boundary with 2% overshoot; minimal norm in `distances`, kept only within eps if set (torchattacks)',
  norm: 'l2',
  normOf: (p) => distanceNorm(p.norm),
  schema,
  attack: async (ctx, x, y, p) => {
    const out = await runMinNorm(ctx, x, y, p.eps, (xs, ys) => deepfoolRun(ctx, xs, ys, p), { keepUnfooled: true });
    return { xAdv: out.xAdv, distances: out.distances };
  },
});
