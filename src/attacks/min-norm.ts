// What the minimum-norm attacks (fmn, deepfool, hopskipjump) share: their `norm` parameter,
// per-example Lp norms, and the one way they report a result.
//
// Reporting convention. A minimum-norm attack finds, per example, the smallest perturbation
// it can that fools the model; how small it is measures robustness at every budget at once.
//  * `distances[i]` is the norm (in the attack's `norm`) of the best fooling perturbation
//    found for example i, whatever `eps` is; 0 for an example the model already
//    misclassifies; +∞ where the attack found none. A robust-accuracy curve over budgets ε'
//    is #{clean correct and distances > ε'} / n.
//  * `eps` (optional) is the budget of the robust accuracy the evaluator computes from the
//    returned images: a row whose best perturbation is larger than `eps` comes back as the
//    clean x (as FAB discards results beyond ε), so the evaluator's usual "prediction on
//    xAdv" counts it as robust. Without `eps` every fooling point found is returned (robust
//    accuracy then counts only the examples the attack could not fool at all).
// Only the rows the target classifies correctly are attacked (one attempt of the shared
// robust-rows loop).
import { fraction } from '../config/schema';
import { tf } from '../engine/tf';
import { attackRobustRows } from './robust-rows';
import type { AttackContext, DistanceNorm } from './types';

export const MIN_NORMS = ['Linf', 'L2', 'L1'] as const;
export type MinNorm = (typeof MIN_NORMS)[number];

export function distanceNorm(norm: MinNorm): DistanceNorm {
  return norm === 'Linf' ? 'linf' : norm === 'L2' ? 'l2' : 'l1';
}

/** The optional budget of a minimum-norm attack (see the header). */
export function minNormEpsParam() {
  return fraction.refine((v) => v >= 0, 'must be ≥ 0').optional();
}

/** Per-row Lp norm of a [n, ...] tensor over all other axes. */
export function lpNorm(t: tf.Tensor, norm: MinNorm): tf.Tensor1D {
  return tf.tidy(() => {
    const axes = Array.from({ length: t.rank - 1 }, (_, i) => i + 1);
    if (norm === 'Linf') return tf.max(tf.abs(t), axes) as tf.Tensor1D;
    if (norm === 'L1') return tf.sum(tf.abs(t), axes) as tf.Tensor1D;
    return tf.sqrt(tf.sum(tf.square(t), axes)) as tf.Tensor1D;
  });
}

export interface MinNormRun {
  /** Per attacked row: the point to return when it counts (disposed by the caller). */
  xAdv: tf.Tensor4D;
  /** Per attacked row: the norm of the best fooling perturbation, +∞ if none. */
  dist: Float32Array;
  /** Per attacked row: model queries spent (decision-based attacks). */
  queries?: Int32Array;
}

export interface MinNormOutcome {
  xAdv: tf.Tensor4D;
  distances: Float32Array;
  /** Per row of the batch (clean check included where `cleanQueries`); absent if the run reports none. */
  queries?: Int32Array;
}

/**
 * Runs a minimum-norm attack on the rows the target classifies correctly and applies the
 * reporting convention of the header. `keepUnfooled`: rows the run did not fool also take
 * its output (DeepFool returns its last iterate, as torchattacks) when no `eps` is given.
 * `cleanQueries`: the clean classification counts as one query per row (decision-based attacks).
 */
export async function runMinNorm(
  ctx: AttackContext,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  eps: number | undefined,
  run: (xs: tf.Tensor4D, ys: Int32Array, idx: readonly number[]) => Promise<MinNormRun>,
  opts: { keepUnfooled?: boolean; cleanQueries?: boolean } = {},
): Promise<MinNormOutcome> {
  const n = x.shape[0];
  const distances = new Float32Array(n); // 0: already misclassified (not attacked)
  let queries: Int32Array | undefined = opts.cleanQueries ? new Int32Array(n).fill(1) : undefined;
  const res = await attackRobustRows(ctx.target, x, y, [
    async (xs, ys, idx) => {
      const r = await run(xs, ys, idx);
      const fooled = Array.from(r.dist, (d) => Number.isFinite(d) && (eps === undefined || d <= eps));
      r.dist.forEach((d, j) => (distances[idx[j]] = d));
      if (r.queries) {
        queries ??= new Int32Array(n);
        r.queries.forEach((q, j) => (queries![idx[j]] += q));
      }
      const take = opts.keepUnfooled && eps === undefined ? fooled.map(() => true) : fooled;
      return { xAdv: r.xAdv, fooled, take };
    },
  ]);
  return { xAdv: res.xAdv, distances, queries };
}
