// FMN, the fast minimum-norm attack (Pintor et al. 2021, "Fast Minimum-norm Adversarial
// Attacks through Adaptive Norm Constraints"), untargeted, in L∞, L2 or L1, following the
// authors' code (pralab/Fast-Minimum-Norm-FMN-Attack, src/attacks/fmn.py, FMNAttackLp.run;
// the same loop as foolbox 3.3's fast_minimum_norm.py, whose L2 projection there is a no-op
// bug: factor = min(1, norms/norms)). Per example, from δ = 0 and ε = +∞, each step i:
//   α_i = α_f + (α₀ − α_f)(1 + cos(πi/K))/2,   γ_i = γ_f + (γ₀ − γ_f)(1 + cos(πi/K))/2
//   m = z_y − max_{j≠y} z_j at x + δ,  g = ∇_δ (−m),  adversarial ⟺ argmax z ≠ y
//   keep δ as the best if adversarial and ‖δ‖_p ≤ the best norm so far
//   ε ← adversarial ? min(ε(1 − γ_i), ‖δ_best‖_p)
//       : any adversarial found before ? ε(1 + γ_i) : ‖δ‖_p + |m| / ‖g‖_q   (q the dual norm)
//   ε ← min(ε, ‖max(x, 1 − x)‖_p)
//   δ ← Π_{‖·‖_p ≤ ε}(δ + α_i g/‖g‖₂),  δ ← clip(x + δ, 0, 1) − x
// with Π the L∞ clip, the L2 rescaling δ·min(1, ε/‖δ‖₂), or the Euclidean projection onto the
// L1 ball (Duchi et al. 2008; identity when ‖δ‖₁ < ε). The result is x + δ_best (x when no
// adversarial point was met). Defaults: 100 steps (foolbox; the authors' file has 10),
// α₀ = 1, α_f = α₀/100, γ₀ = 0.05, γ_f = 0.001 (both codes).
//
// Result convention (./min-norm.ts): `distances` = ‖δ_best‖_p per example (+∞ where none was
// found, 0 where x is already misclassified), whatever `eps`; with `eps` set, a row whose
// ‖δ_best‖_p > eps comes back as x, so the evaluator's robust accuracy is the one at budget eps.
// The ‖·‖/0 of the reference's ε estimate is floored at 1e-12 (a vanishing gradient would give
// 0/0 = NaN there).
import { z } from 'zod';
import { tf } from '../engine/tf';
import { swap } from './common';
import { noYield } from './interrupt';
import { distanceNorm, lpNorm, MIN_NORMS, minNormEpsParam, runMinNorm, type MinNorm } from './min-norm';
import { checkLinfBudget, defineAttack, posInt, posNum } from './params';
import type { AttackContext } from './types';

const schema = z
  .object({
    norm: z.enum(MIN_NORMS).default('Linf'),
    /** Budget of the reported robust accuracy (see the header); absent: every fooling point counts. */
    eps: minNormEpsParam(),
    steps: posInt(100),
    /** Initial step size α₀ (of the L2-normalised gradient step). */
    alphaInit: posNum(1.0),
    /** Final step size after cosine annealing; default α₀/100. */
    alphaFinal: z.number().positive().finite().optional(),
    /** Initial ε-update factor γ₀. */
    gammaInit: z.number().positive().max(1).default(0.05),
    gammaFinal: z.number().positive().max(1).default(0.001),
  })
  .strict()
  .superRefine(checkLinfBudget);
export type FmnParams = z.output<typeof schema>;

const DUAL: Record<MinNorm, MinNorm> = { Linf: 'L1', L2: 'L2', L1: 'Linf' };

/** Euclidean projection of each row of δ [n, d] onto the L1 ball of radius eps[i] (Duchi et al. 2008). */
export function projectL1Ball(delta: tf.Tensor2D, eps: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => {
    const d = delta.shape[1];
    const a = tf.abs(delta);
    const mu = tf.topk(a, d, true).values; // |δ| sorted descending
    const cs = tf.cumsum(mu, 1);
    const ar = tf.range(1, d + 1, 1, 'float32').reshape([1, d]);
    const e = tf.reshape(eps, [-1, 1]);
    const cond = tf.cast(tf.greater(tf.mul(mu, ar), tf.sub(cs, e)), 'float32');
    const rhoP1 = tf.max(tf.mul(cond, ar), 1); // ρ + 1 (0 only when ε ≤ 0)
    const at = tf.oneHot(tf.cast(tf.sub(rhoP1, 1), 'int32'), d); // row of −1 → all zeros
    const theta = tf.div(tf.sub(tf.sum(tf.mul(cs, tf.cast(at, 'float32')), 1), eps), tf.maximum(rhoP1, 1));
    const proj = tf.mul(tf.relu(tf.sub(a, tf.reshape(theta, [-1, 1]))), tf.sign(delta));
    const inside = tf.reshape(tf.less(tf.sum(a, 1), eps), [-1, 1]);
    const zero = tf.reshape(tf.equal(rhoP1, 0), [-1, 1]);
    return tf.where(inside, delta, tf.where(zero, tf.zerosLike(delta), proj)) as tf.Tensor2D;
  });
}

/** δ projected onto the ‖·‖_p ≤ eps ball, per row (the reference's three projections). */
function projectBall(delta: tf.Tensor4D, eps: tf.Tensor1D, norm: MinNorm): tf.Tensor4D {
  return tf.tidy(() => {
    const e4 = tf.reshape(eps, [-1, 1, 1, 1]);
    if (norm === 'Linf') return tf.minimum(tf.maximum(delta, tf.neg(e4)), e4) as tf.Tensor4D;
    if (norm === 'L2') {
      const n = tf.maximum(tf.reshape(lpNorm(delta, 'L2'), [-1, 1, 1, 1]), 1e-12);
      return tf.mul(delta, tf.minimum(1, tf.div(e4, n))) as tf.Tensor4D;
    }
    const flat = tf.reshape(delta, [delta.shape[0], -1]) as tf.Tensor2D;
    return tf.reshape(projectL1Ball(flat, eps), delta.shape) as tf.Tensor4D;
  });
}

export interface FmnOptions {
  norm: MinNorm;
  steps: number;
  alphaInit: number;
  alphaFinal?: number;
  gammaInit: number;
  gammaFinal: number;
}

/** One FMN run on a batch: x + δ_best per row and ‖δ_best‖_p (+∞ where no adversarial point was met). */
export async function fmnRun(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, labels: Int32Array, o: FmnOptions): Promise<{ xAdv: tf.Tensor4D; dist: Float32Array }> {
  const { target } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const n = x.shape[0];
  const aF = o.alphaFinal ?? o.alphaInit / 100;
  const yIdx = tf.tensor1d(labels, 'int32');
  const yOh = tf.tidy(() => tf.cast(tf.oneHot(yIdx, target.numClasses), 'float32') as tf.Tensor2D);
  const worst = tf.tidy(() => lpNorm(tf.maximum(x, tf.sub(1, x)), o.norm));
  let delta: tf.Tensor4D = tf.zerosLike(x);
  let bestDelta: tf.Tensor4D = tf.zerosLike(x);
  let bestNorm: tf.Tensor1D = tf.clone(worst);
  let eps = tf.fill([n], Infinity) as tf.Tensor1D;
  let found = tf.fill([n], 0, 'bool') as tf.Tensor1D;
  const dispose = () => tf.dispose([yIdx, yOh, worst, delta, bestDelta, bestNorm, eps, found]);
  try {
    for (let i = 0; i < o.steps; i++) {
      await yieldPoint();
      const cos = (1 + Math.cos((Math.PI * i) / o.steps)) / 2;
      const alpha = aF + (o.alphaInit - aF) * cos;
      const gamma = o.gammaFinal + (o.gammaInit - o.gammaFinal) * cos;
      let logits!: tf.Tensor2D;
      let margin!: tf.Tensor1D;
      const grad = tf.grad((d: tf.Tensor) => {
        logits = tf.keep(target.logits(tf.add(x, d) as tf.Tensor4D));
        // The runner-up class (true class excluded) picked by value, then a constant one-hot.
        const other = tf.oneHot(tf.argMax(tf.where(tf.cast(yOh, 'bool'), tf.fill(logits.shape, -Infinity), logits), 1), target.numClasses);
        margin = tf.keep(tf.sub(tf.sum(tf.mul(logits, yOh), 1), tf.sum(tf.mul(logits, tf.cast(other, 'float32')), 1)) as tf.Tensor1D);
        return tf.neg(tf.sum(margin));
      })(delta) as tf.Tensor4D;
      const next = tf.tidy(() => {
        const isAdv = tf.notEqual(tf.cast(tf.argMax(logits, 1), 'int32'), yIdx);
        const lp = lpNorm(delta, o.norm);
        const both = tf.logicalAnd(isAdv, tf.lessEqual(lp, bestNorm));
        const bN = tf.where(both, lp, bestNorm) as tf.Tensor1D;
        const bD = tf.where(tf.reshape(both, [-1, 1, 1, 1]), delta, bestDelta) as tf.Tensor4D;
        const f = tf.logicalOr(found, isAdv) as tf.Tensor1D;
        const toBoundary = tf.div(tf.abs(margin), tf.maximum(lpNorm(grad, DUAL[o.norm]), 1e-12));
        let e = tf.where(
          isAdv,
          tf.minimum(tf.mul(eps, 1 - gamma), lpNorm(bD, o.norm)),
          tf.where(f, tf.mul(eps, 1 + gamma), tf.add(lp, toBoundary)),
        );
        e = tf.minimum(e, worst) as tf.Tensor1D;
        const g2 = tf.maximum(tf.reshape(lpNorm(grad, 'L2'), [-1, 1, 1, 1]), 1e-12);
        const stepped = tf.add(delta, tf.mul(tf.div(grad, g2), alpha)) as tf.Tensor4D;
        const projected = projectBall(stepped, e as tf.Tensor1D, o.norm);
        const d = tf.sub(tf.clipByValue(tf.add(x, projected), 0, 1), x) as tf.Tensor4D;
        return { d, bN, bD, f, e: e as tf.Tensor1D };
      });
      tf.dispose([grad, logits, margin]);
      delta = swap(delta, next.d);
      bestDelta = swap(bestDelta, next.bD);
      bestNorm = swap(bestNorm, next.bN);
      found = swap(found, next.f);
      eps = swap(eps, next.e);
    }
    const xAdv = tf.tidy(() => tf.add(x, bestDelta) as tf.Tensor4D);
    const [bn, fd] = await Promise.all([bestNorm.data(), found.data()]);
    const dist = Float32Array.from(bn, (v, j) => (fd[j] ? v : Infinity));
    return { xAdv, dist };
  } finally {
    dispose();
  }
}

export const fmn = defineAttack<FmnParams>({
  name: 'fmn',
  description: 'Fast minimum-norm attack, L∞/L2/L1, adaptive ε with cosine-annealed steps; minimal norm in `distances`, kept only within eps (Pintor et al. 2021)',
  norm: 'linf',
  normOf: (p) => distanceNorm(p.norm),
  schema,
  attack: async (ctx, x, y, p) => {
    const out = await runMinNorm(ctx, x, y, p.eps, (xs, ys) => fmnRun(ctx, xs, ys, p));
    return { xAdv: out.xAdv, distances: out.distances };
  },
});
