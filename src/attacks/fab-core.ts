// FAB (Croce & Hein 2020), following AutoAttack's fab_base.py / fab_pt.py / torchattacks FAB: only
// correctly classified points are attacked; each step linearises the decision boundary at
// x_t, projects both x_t and the original x₀ onto that hyperplane within the box, and mixes
//   x_{t+1} = clip01((x_t + η·d_t)(1 − a) + (x₀ + η·d₀)·a),  a = min(max(‖d_t‖/(‖d_t‖+‖d₀‖), 0), α_max)
// (norms in the attack's norm, floored at 1e-8). When x_{t+1} is misclassified it is recorded if
// its distance is the smallest so far, then pulled back: x_{t+1} ← x₀ + β(x_{t+1} − x₀). After
// all runs a result farther than ε is discarded (the clean image is kept).
//
// `norm` L∞ (default), L2 or L1: the projection onto the hyperplane ∩ box is that norm's
// (./fab-projection.ts), distances are measured in it, the closest hyperplane is picked with the
// dual norm of its gradient (L∞ → ‖·‖₁, L2 → ‖·‖₂, L1 → ‖·‖∞), and the random start of the
// later restarts is x₀ + min(best, ε)/2·t/‖t‖ with t ~ U(−1,1) (L∞) or N(0, I) (L2, L1).
//
// No `eot`: FAB is a minimum-norm attack that linearises the classifier at each iterate and
// keeps the smallest misclassified point; against a randomized model its Jacobian and the
// misclassification test would both need EOT over a per-class replay of the same randomness
// (K + 1 backward passes per sample), and AutoAttack's FAB has none either ('rand' runs only
// APGD). Square is gradient-free, so EOT does not apply to it.
//
// Untargeted: the hyperplane is that of the class k ≠ y minimising |z_k − z_y| / ‖∇(z_k − z_y)‖_dual,
// which needs the full Jacobian: one backward pass per class per step (tf.grad on Σ_i z_ik)
// plus one for ∇z_y, i.e. K + 1 forward+backward passes per step where PyTorch retains the
// graph (1 forward, K backward); streaming the classes keeps memory at O(batch·pixels). Targeted: the single hyperplane z_t − z_y for the `rank`-th most likely class of
// the clean input (rank 2 = runner-up), one backward pass per step.
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { predict, rankedClass } from './common';
import { projectL1Row, projectL2Row, projectLinfRow } from './fab-projection';
import { lpDist, type LpNorm } from './lp';
import { noYield } from './interrupt';
import { attackRobustRows, type Attempt } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

export interface FabOptions {
  eps: number;
  steps: number;
  restarts: number;
  alphaMax: number;
  eta: number;
  beta: number;
  /** Default L∞. */
  norm?: LpNorm;
}

const PROJECT = { Linf: projectLinfRow, L2: projectL2Row, L1: projectL1Row };

/** ‖v‖ of a host vector in `norm`. */
function hostNorm(v: ArrayLike<number>, norm: LpNorm): number {
  let a = 0;
  for (let i = 0; i < v.length; i++) {
    const e = Math.abs(v[i]);
    if (norm === 'Linf') a = Math.max(a, e);
    else if (norm === 'L2') a += e * e;
    else a += e;
  }
  return norm === 'L2' ? Math.sqrt(a) : a;
}

/** Per-row dual norm of a [n, d] gradient, for the closest-hyperplane choice. */
function dualNorm(g: tf.Tensor2D, norm: LpNorm): tf.Tensor1D {
  if (norm === 'Linf') return tf.sum(tf.abs(g), 1) as tf.Tensor1D;
  if (norm === 'L2') return tf.sqrt(tf.sum(tf.square(g), 1)) as tf.Tensor1D;
  return tf.max(tf.abs(g), 1) as tf.Tensor1D;
}

/** Hyperplane per example at x1: w (flattened NHWC) and b with w·z = b the linearised boundary. */
async function boundaryPlanes(
  target: AttackTarget,
  x1: tf.Tensor4D,
  yIdx: Int32Array,
  targets: Int32Array | null,
  norm: LpNorm,
): Promise<{ w: Float32Array; b: Float32Array }> {
  const K = target.numClasses;
  const n = x1.shape[0];
  const [wT, bT] = tf.tidy(() => {
    const yOh = tf.cast(tf.oneHot(tf.tensor1d(yIdx, 'int32'), K), 'float32');
    const flatX = tf.reshape(x1, [n, -1]);
    let w: tf.Tensor2D;
    let df: tf.Tensor1D;
    if (targets) {
      const tOh = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), K), 'float32');
      const diff = (xi: tf.Tensor) => tf.sum(tf.mul(tf.sub(tOh, yOh), target.logits(xi as tf.Tensor4D)), 1);
      df = tf.tidy(() => diff(x1)) as tf.Tensor1D;
      w = tf.reshape(tf.grad((xi: tf.Tensor) => tf.sum(diff(xi)))(x1), [n, -1]) as tf.Tensor2D;
    } else {
      // Streamed over classes so that memory stays O(n·d) whatever K: ∇z_y first, then per
      // class k the distance |z_k − z_y|/‖∇z_k − ∇z_y‖₁, keeping the first minimum (argmin).
      const logits = target.logits(x1);
      const gradOf = (seed: tf.Tensor) =>
        tf.reshape(tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(seed, target.logits(xi as tf.Tensor4D))))(x1), [n, -1]);
      const gy = gradOf(yOh);
      const zy = tf.sum(tf.mul(logits, yOh), 1);
      let bestDist = tf.fill([n], Infinity) as tf.Tensor1D;
      w = tf.zerosLike(gy) as tf.Tensor2D;
      df = tf.zerosLike(zy) as tf.Tensor1D;
      for (let k = 0; k < K; k++) {
        const next = tf.tidy(() => {
          const col = tf.cast(tf.oneHot(tf.fill([n], k, 'int32'), K), 'float32');
          const dg = tf.sub(gradOf(col), gy);
          const isY = tf.equal(tf.tensor1d(yIdx, 'int32'), k);
          // The true class gets 1e10 so that it is never the closest boundary (as the reference).
          const dfk = tf.where(isY, tf.fill([n], 1e10), tf.sub(tf.sum(tf.mul(logits, col), 1), zy));
          const dist = tf.div(tf.abs(dfk), tf.add(dualNorm(dg as tf.Tensor2D, norm), 1e-12));
          const better = tf.less(dist, bestDist);
          return [
            tf.where(better, dist, bestDist),
            tf.where(tf.expandDims(better, 1), dg, w),
            tf.where(better, dfk, df),
          ] as [tf.Tensor1D, tf.Tensor2D, tf.Tensor1D];
        });
        tf.dispose([bestDist, w, df]);
        [bestDist, w, df] = next;
      }
    }
    const b = tf.add(tf.neg(df), tf.sum(tf.mul(w, flatX), 1));
    return [w, b];
  });
  try {
    const [w, b] = await Promise.all([wT.data(), bT.data()]);
    return { w: w as Float32Array, b: b as Float32Array };
  } finally {
    tf.dispose([wT, bT]);
  }
}

/**
 * One FAB run on a batch whose points are all to be attacked. Returns the per-example
 * smallest-norm misclassified point found (flattened NHWC) and its distance (1e10 if none).
 */
async function fabSingleRun(
  ctx: AttackContext,
  x: tf.Tensor4D,
  yIdx: Int32Array,
  targets: Int32Array | null,
  o: FabOptions,
  randomStart: boolean,
): Promise<{ adv: Float32Array; dist: Float64Array }> {
  const { target, rng } = ctx;
  const norm = o.norm ?? 'Linf';
  const project = PROJECT[norm];
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const [n, h, wd, c] = x.shape;
  const d = h * wd * c;
  const x0 = (await x.data()) as Float32Array;
  const x1 = Float32Array.from(x0);
  const adv = Float32Array.from(x0);
  const best = new Float64Array(n).fill(1e10);
  if (randomStart) {
    // AutoAttack: x₀ + min(best, ε)·t/‖t‖·0.5 with t ~ U(−1, 1) (L∞) or N(0, I), clipped;
    // best = 1e10 here.
    for (let i = 0; i < n; i++) {
      const t = norm === 'Linf' ? rng.fillUniform(new Float32Array(d), -1, 1) : rng.fillNormal(new Float32Array(d));
      const r = (Math.min(best[i], o.eps) * 0.5) / hostNorm(t, norm);
      for (let j = 0; j < d; j++) x1[i * d + j] = clip01(x0[i * d + j] + r * t[j]);
    }
  }
  const d1 = new Float64Array(d);
  const d2 = new Float64Array(d);
  for (let step = 0; step < o.steps; step++) {
    await yieldPoint();
    const x1t = tf.tensor4d(x1, [n, h, wd, c]);
    const { w, b } = await boundaryPlanes(target, x1t, yIdx, targets, norm).finally(() => x1t.dispose());
    for (let i = 0; i < n; i++) {
      const wi = w.subarray(i * d, (i + 1) * d);
      const row1 = x1.subarray(i * d, (i + 1) * d);
      const row0 = x0.subarray(i * d, (i + 1) * d);
      project(row1, wi, b[i], d1);
      project(row0, wi, b[i], d2);
      const a1 = Math.max(hostNorm(d1, norm), 1e-8);
      const a2 = Math.max(hostNorm(d2, norm), 1e-8);
      const alpha = Math.min(Math.max(a1 / (a1 + a2), 0), o.alphaMax);
      for (let j = 0; j < d; j++) {
        row1[j] = clip01((row1[j] + o.eta * d1[j]) * (1 - alpha) + (row0[j] + d2[j] * o.eta) * alpha);
      }
    }
    const x1n = tf.tensor4d(x1, [n, h, wd, c]);
    const pred = await predict(target, x1n).finally(() => x1n.dispose());
    for (let i = 0; i < n; i++) {
      if (pred[i] === yIdx[i]) continue;
      const row1 = x1.subarray(i * d, (i + 1) * d);
      const row0 = x0.subarray(i * d, (i + 1) * d);
      for (let j = 0; j < d; j++) d1[j] = row1[j] - row0[j];
      const dist = hostNorm(d1, norm);
      if (dist < best[i]) {
        adv.set(row1, i * d);
        best[i] = dist;
      }
      for (let j = 0; j < d; j++) row1[j] = row0[j] + (row1[j] - row0[j]) * o.beta;
    }
  }
  return { adv, dist: best };
}

/**
 * FAB over a batch (AutoAttack `perturb`): untargeted with `restarts` runs (random start
 * from the second), or targeted over ranks 2..nTargets+1 with `restarts` runs each. Each run
 * attacks only the points still correctly classified within ε.
 */
export async function fabAttack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, o: FabOptions, nTargets: number | null): Promise<tf.Tensor4D> {
  const { target } = ctx;
  // Ranks 2..nTargets+1 (AutoAttack), capped at the number of other classes.
  const ranks = nTargets === null ? [null] : range(2, Math.min(nTargets, target.numClasses - 1) + 2);
  const attempts: Attempt[] = [];
  for (const rank of ranks) {
    for (let r = 0; r < o.restarts; r++) {
      attempts.push(async (xs, ys) => {
        const targets = rank === null ? null : await rankedClass(target, xs, rank);
        const run = await fabSingleRun(ctx, xs, ys, targets, o, r > 0);
        const xAdv = tf.tensor4d(run.adv, xs.shape);
        const [pred, dist] = await Promise.all([predict(target, xAdv), lpDist(xAdv, xs, o.norm ?? 'Linf')]);
        // A point counts only if misclassified and within ε (else the clean image stays).
        const fooled = Array.from(pred, (p, j) => run.dist[j] < 1e10 && p !== ys[j] && !(dist[j] > o.eps));
        return { xAdv, fooled };
      });
    }
  }
  return (await attackRobustRows(target, x, y, attempts)).xAdv;
}

function clip01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

function range(lo: number, hi: number): number[] {
  const out: number[] = [];
  for (let i = lo; i < hi; i++) out.push(i);
  return out;
}
