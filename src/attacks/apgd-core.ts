// APGD (Croce & Hein 2020), following AutoAttack's autopgd_base.py (APGDAttack
// attack_single_run / perturb / decr_eps_pgd). L∞:
//  * start x + ε·t/‖t‖∞, t ~ U(−1, 1)^d, clipped to [0,1];
//  * step size η = 2ε per example; momentum step
//      z = P(x_k + η·sign ∇),  x_{k+1} = P(x_k + a(z − x_k) + (1 − a)(x_k − x_{k−1})),
//    a = 1 at the first iteration, 0.75 after (P: clip to the ε-ball, then to [0,1]);
//  * checkpoints: after k₀ = max(⌊.22·N⌋, 1) iterations, then every k ← max(k − max(⌊.03·N⌋, 1),
//    max(⌊.06·N⌋, 1)) more; at each, an example whose loss increased on ≤ ρ·k of the last k
//    steps, or whose best loss did not improve since the last checkpoint (unless its step was
//    just halved), gets its step halved and restarts from its best-loss point;
//  * the result is the last misclassified iterate (x if there was none).
// L2: start x + ε·t/‖t‖₂, t ~ N(0, I); steps η·∇/‖∇‖₂ with η = 2ε, the same momentum, each
//   point projected as clip01(x + δ/‖δ‖₂·min(ε, ‖δ‖₂)); the same checkpoints.
// L1 (Croce & Hein 2021, "Mind the box"): start x + t + P(t), t ~ N(0, I), P the projection onto
//   the L1 ball ∩ box (./l1-projection.ts); each step moves by η/‖s‖₁·s with s the sign of the
//   gradient kept only on its top-k coordinates (k = topk·d, |∇| at or above the k-th largest),
//   then projects; no momentum; η = ε. Every max(⌊.04·N⌋, 1) iterations (fixed): with sp the
//   number of nonzero coordinates of x_best − x, topk ← sp/d/1.5; an example whose sparsity fell
//   below .95 of the last check gets η = ε and restarts from x_best, the others η ← η/1.5;
//   η stays in [ε/10, ε]. topk starts at .2 (random start) or L0(start − x)/d/1.5 (given start).
//   `largeReps` (AutoAttack standard L1, use_largereps): each run is three runs from
//   x + t projected at 3ε, with ε = 3ε, 2ε, ε over ⌈.3N⌉, ⌈.3N⌉ and the rest of the N
//   iterations, each starting from the previous one's highest-loss point (re-projected).
// Gradients are of the per-example loss summed over the batch (only its direction is used).
// `eot` > 1 (AutoAttack version 'rand', eot_iter): each gradient is the mean over that many
// stochastic forwards (./eot.ts), the loss the step-size rule reads is their mean loss, and
// misclassification is judged by the target's eval forward (AutoAttack reads both from the
// last of the stochastic forwards).
// Losses: CE; DLR = −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3 + 1e-12); targeted DLR =
// −(z_y − z_t)/(z_π1 − ½(z_π3 + z_π4) + 1e-12), π the logits sorted in decreasing order.
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { UserError } from '../errors';
import { backendReadsSync } from '../engine/reads';
import { cePerExample, normalTensor, predict, projectLinfMinMax, rankedClass, readTidy, swap, uniformTensor, whereRows } from './common';
import type { Eot, Forward } from './eot';
import { noYield } from './interrupt';
import { l1BoxProjection, l1BoxProjectionRow, l1Scratch } from './l1-projection';
import { lpNorm, type LpNorm } from './lp';
import { attackRobustRows, type Attempt } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

export type ApgdLoss = 'ce' | 'dlr' | 'dlr-targeted';

export interface ApgdOptions {
  eps: number;
  steps: number;
  restarts: number;
  rho: number;
  loss: ApgdLoss;
  /** Threat model; default L∞. */
  norm?: LpNorm;
  /** L1 only: AutoAttack's large-ε schedule (use_largereps). */
  largeReps?: boolean;
  /** Gradient samples per step (./eot.ts); absent or inactive: plain gradients. */
  eot?: Eot;
}

export interface ApgdSchedule {
  /** k₀, the first checkpoint interval. */
  first: number;
  /** The smallest interval. */
  min: number;
  /** How much the interval shrinks after each checkpoint. */
  decrement: number;
}

export function apgdSchedule(steps: number): ApgdSchedule {
  return {
    first: Math.max(Math.floor(0.22 * steps), 1),
    min: Math.max(Math.floor(0.06 * steps), 1),
    decrement: Math.max(Math.floor(0.03 * steps), 1),
  };
}

/** Iteration counts after which the step size is checked (e.g. 22, 41, 57, … for N = 100). */
export function apgdCheckpoints(steps: number): number[] {
  const s = apgdSchedule(steps);
  const out: number[] = [];
  let k = s.first;
  for (let done = k; done <= steps; done += k) {
    out.push(done);
    k = Math.max(k - s.decrement, s.min);
  }
  return out;
}

/** Loss per example as −(a·z)/(b·z + 1e-12) coefficients for the DLR variants (JS, from logit values). */
function dlrCoefficients(z: ArrayLike<number>, n: number, K: number, y: Int32Array, t: Int32Array | null): { a: Float32Array; b: Float32Array } {
  const a = new Float32Array(n * K);
  const b = new Float32Array(n * K);
  const order = new Array<number>(K);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) order[k] = k;
    order.sort((p, q) => z[i * K + q] - z[i * K + p] || p - q); // decreasing
    const o = i * K;
    a[o + y[i]] += 1;
    if (t) {
      a[o + t[i]] -= 1;
      b[o + order[0]] += 1;
      b[o + order[2]] -= 0.5;
      b[o + order[3]] -= 0.5;
    } else {
      a[o + (order[0] === y[i] ? order[1] : order[0])] -= 1;
      b[o + order[0]] += 1;
      b[o + order[2]] -= 1;
    }
  }
  return { a, b };
}

/**
 * `values`: the logits' values, when read ahead of the gradient tape (backends without
 * synchronous reads); otherwise they are read here.
 */
export function apgdLossPerExample(logits: tf.Tensor2D, y: Int32Array, t: Int32Array | null, loss: ApgdLoss, values?: ArrayLike<number>): tf.Tensor1D {
  const [n, K] = logits.shape;
  if (loss === 'ce') return cePerExample(logits, tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), K), 'float32') as tf.Tensor2D);
  // The sort picks which logits enter; the gradient flows through the picked values, as torch's sort.
  const { a, b } = dlrCoefficients(values ?? logits.dataSync(), n, K, y, loss === 'dlr-targeted' ? t : null);
  const num = tf.sum(tf.mul(tf.tensor2d(a, [n, K]), logits), 1);
  const den = tf.add(tf.sum(tf.mul(tf.tensor2d(b, [n, K]), logits), 1), 1e-12);
  return tf.neg(tf.div(num, den)) as tf.Tensor1D;
}

interface Probe {
  loss: Float32Array;
  pred: Int32Array;
  grad: tf.Tensor4D;
}

async function probeOne(forward: Forward, xAdv: tf.Tensor4D, y: Int32Array, t: Int32Array | null, loss: ApgdLoss): Promise<Probe> {
  // DLR's sort needs the logits on the host inside the tape; a backend that cannot read
  // synchronously gets them from an extra forward before it (the same values: an EOT forward
  // replays its randomness).
  const ahead = loss !== 'ce' && !backendReadsSync() ? await readTidy(() => forward(xAdv)) : undefined;
  let lossKept!: tf.Tensor1D;
  let logitsKept!: tf.Tensor2D;
  const grad = tf.grad((xi: tf.Tensor) => {
    logitsKept = tf.keep(forward(xi as tf.Tensor4D));
    lossKept = tf.keep(apgdLossPerExample(logitsKept, y, t, loss, ahead));
    return tf.sum(lossKept);
  })(xAdv) as tf.Tensor4D;
  try {
    const [pred, lossVals] = await Promise.all([readTidy<'int32'>(() => tf.argMax(logitsKept, 1)), lossKept.data()]);
    return { loss: Float32Array.from(lossVals), pred, grad };
  } finally {
    tf.dispose([lossKept, logitsKept]);
  }
}

/** Loss, prediction and gradient at xAdv; with EOT the mean loss and gradient over its forwards. */
async function probe(target: AttackTarget, eot: Eot | undefined, xAdv: tf.Tensor4D, y: Int32Array, t: Int32Array | null, loss: ApgdLoss): Promise<Probe> {
  if (!eot?.active) return probeOne((xi) => target.logits(xi), xAdv, y, t, loss);
  const fwds = eot.forwards();
  const lossSum = new Float64Array(y.length);
  let gradSum: tf.Tensor4D | null = null;
  try {
    for (const f of fwds) {
      const r = await probeOne(f, xAdv, y, t, loss);
      r.loss.forEach((v, i) => (lossSum[i] += v));
      if (gradSum) gradSum = swap(gradSum, tf.add(gradSum, r.grad) as tf.Tensor4D);
      else gradSum = tf.clone(r.grad);
      r.grad.dispose();
    }
  } catch (err) {
    gradSum?.dispose();
    throw err;
  }
  const grad = tf.div(gradSum!, fwds.length) as tf.Tensor4D;
  gradSum!.dispose();
  return { loss: Float32Array.from(lossSum, (v) => v / fwds.length), pred: await predict(target, xAdv), grad };
}

/** Did the loss go up on at most ρ·k of the last k steps? (AutoAttack's check_oscillation,
 *  including its index wrap-around: before step 0 it reads the still-zero last slot.) */
function oscillated(lossSteps: Float32Array[], i: number, k: number, rho: number, ex: number): boolean {
  const N = lossSteps.length;
  const at = (j: number) => lossSteps[((j % N) + N) % N][ex];
  let ups = 0;
  for (let c = 0; c < k; c++) if (at(i - c) > at(i - c - 1)) ups++;
  return ups <= k * rho;
}

export interface ApgdRun {
  /** The last misclassified iterate per example (the start where there was none). */
  xAdv: tf.Tensor4D;
  fooled: boolean[];
  /** The highest-loss iterate and its loss, per example. */
  xBest: tf.Tensor4D;
  lossBest: Float32Array;
}

/** float32 rounding, for the L1 bookkeeping that AutoAttack does in float32 tensors. */
const f32 = Math.fround;

/** Per example, how many coordinates of a differ from b (AutoAttack's L0_norm(a − b)). */
function l0Diff(a: Float32Array, b: Float32Array, n: number, d: number): number[] {
  return Array.from({ length: n }, (_, i) => {
    let c = 0;
    for (let j = i * d; j < (i + 1) * d; j++) if (a[j] !== b[j]) c++;
    return c;
  });
}

/**
 * One L1 step on the host, in float32 as AutoAttack computes it: the sign of the gradient on its
 * top-k coordinates, scaled to L1 length η, then the projection onto the ε-ball ∩ box.
 */
function l1Step(xv: Float32Array, adv: Float32Array, g: Float32Array, n: number, d: number, eta: Float32Array, topk: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(n * d);
  const sorted = new Float32Array(d);
  const du = new Float32Array(d);
  const dp = new Float64Array(d);
  const scratch = l1Scratch(d);
  for (let i = 0; i < n; i++) {
    const o = i * d;
    for (let j = 0; j < d; j++) sorted[j] = Math.abs(g[o + j]);
    sorted.sort();
    const k = Math.trunc(Math.min(Math.max(f32(f32(1 - topk[i]) * d), 0), d - 1));
    const thr = sorted[k];
    let count = 0;
    for (let j = 0; j < d; j++) if (Math.abs(g[o + j]) >= thr && g[o + j] !== 0) count++;
    const denom = f32(count + 1e-10);
    for (let j = 0; j < d; j++) {
      const sgn = Math.abs(g[o + j]) >= thr ? Math.sign(g[o + j]) : 0;
      const x1 = f32(adv[o + j] + f32(f32(eta[i] * sgn) / denom));
      du[j] = f32(x1 - xv[o + j]);
    }
    l1BoxProjectionRow(xv.subarray(o, o + d), du, eps, dp, scratch);
    for (let j = 0; j < d; j++) out[o + j] = f32(f32(xv[o + j] + du[j]) + dp[j]);
  }
  return out;
}

/** x + t + P(t) for the L1 random start (t not clipped first, as AutoAttack). */
async function l1Start(x: tf.Tensor4D, t: tf.Tensor4D, eps: number): Promise<tf.Tensor4D> {
  const d = x.size / x.shape[0];
  const [xv, tv] = (await Promise.all([x.data(), t.data()])) as Float32Array[];
  const p = l1BoxProjection(xv, tv, d, eps);
  const out = new Float32Array(xv.length);
  for (let j = 0; j < out.length; j++) out[j] = f32(f32(xv[j] + tv[j]) + p[j]);
  return tf.tensor4d(out, x.shape);
}

/** AutoAttack's L2 projection: clip01(x + δ/(‖δ‖₂ + 1e-12)·min(ε, ‖δ‖₂)), δ = z − x. */
function projectL2Apgd(z: tf.Tensor4D, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const delta = tf.sub(z, x);
    const norm = lpNorm(delta, 'L2', true);
    return tf.clipByValue(tf.add(x, tf.mul(tf.div(delta, tf.add(norm, 1e-12)), tf.minimum(eps, norm))), 0, 1) as tf.Tensor4D;
  });
}

export interface ApgdInit {
  /** The random draw t of the start (U(−1,1) for L∞, N(0,1) otherwise), replacing the Rng's. */
  noise?: tf.Tensor4D;
}

/**
 * One APGD run on a batch. `start` replaces the random start (AutoAttack's x_init); it is
 * clipped to [0,1] and not disposed. `init.noise` fixes the random start's draw instead.
 */
export async function apgdSingleRun(
  ctx: AttackContext,
  x: tf.Tensor4D,
  y: Int32Array,
  t: Int32Array | null,
  o: ApgdOptions,
  start?: tf.Tensor4D,
  init: ApgdInit = {},
): Promise<ApgdRun> {
  const { target, rng } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const norm = o.norm ?? 'Linf';
  const n = x.shape[0];
  const d = x.size / n;
  const sched = apgdSchedule(o.steps);
  let xAdv: tf.Tensor4D;
  if (start) xAdv = tf.tidy(() => tf.clipByValue(start, 0, 1) as tf.Tensor4D);
  else if (norm === 'Linf') {
    xAdv = tf.tidy(() => {
      const u = init.noise ?? uniformTensor(rng, x.shape, -1, 1);
      const scale = tf.div(o.eps, tf.add(tf.max(tf.abs(u), [1, 2, 3], true), 1e-12));
      return tf.clipByValue(tf.add(x, tf.mul(u, scale)), 0, 1) as tf.Tensor4D;
    });
  } else {
    const noise = init.noise ?? (normalTensor(rng, x.shape) as tf.Tensor4D);
    if (norm === 'L2') {
      xAdv = tf.tidy(() => {
        const unit = tf.div(noise, tf.add(lpNorm(noise, 'L2', true), 1e-12));
        return tf.clipByValue(tf.add(x, tf.mul(f32(o.eps), unit)), 0, 1) as tf.Tensor4D;
      });
    } else {
      const raw = await l1Start(x, noise, o.eps);
      xAdv = tf.tidy(() => tf.clipByValue(raw, 0, 1) as tf.Tensor4D);
      raw.dispose();
    }
    if (!init.noise) noise.dispose();
  }
  let xBest = tf.clone(xAdv);
  let xBestAdv = tf.clone(xAdv);
  let xAdvOld = tf.clone(xAdv);
  const first = await probe(target, o.eot, xAdv, y, t, o.loss);
  let grad = first.grad;
  let gradBest = tf.clone(grad);
  const acc = Array.from(first.pred, (p, i) => p === y[i]);
  const lossBest = Float32Array.from(first.loss);
  const lossSteps = Array.from({ length: o.steps }, () => new Float32Array(n));
  const alpha = norm === 'L1' ? 1 : 2;
  const stepSize = new Float32Array(n).fill(alpha * o.eps);
  let lossBestLastCheck = Float32Array.from(lossBest);
  let reducedLastCheck = new Array<boolean>(n).fill(true);
  let k = norm === 'L1' ? Math.max(Math.floor(0.04 * o.steps), 1) : sched.first;
  let counter = 0;
  // L1 sparsity schedule.
  const xv = norm === 'L1' ? ((await x.data()) as Float32Array) : null;
  const topk = new Float32Array(n);
  let spOld: number[] = [];
  if (xv) {
    if (start) {
      spOld = l0Diff((await xAdv.data()) as Float32Array, xv, n, d);
      spOld.forEach((sp, i) => (topk[i] = f32(f32(sp / d) / 1.5)));
    } else {
      topk.fill(0.2);
      spOld = new Array<number>(n).fill(d);
    }
  }

  const release = () => tf.dispose([xAdv, xAdvOld, grad, gradBest, xBest, xBestAdv]);
  for (let i = 0; i < o.steps; i++) {
    try {
      await yieldPoint();
    } catch (err) {
      release();
      throw err;
    }
    const a = i > 0 ? 0.75 : 1.0;
    let next: tf.Tensor4D;
    if (norm === 'Linf') {
      next = tf.tidy(() => {
        const eta = tf.tensor(stepSize, [n, 1, 1, 1]);
        const z1 = projectLinfMinMax(tf.add(xAdv, tf.mul(eta, tf.sign(grad))) as tf.Tensor4D, x, o.eps);
        const grad2 = tf.sub(xAdv, xAdvOld);
        const mixed = tf.add(tf.add(xAdv, tf.mul(tf.sub(z1, xAdv), a)), tf.mul(grad2, 1 - a));
        return projectLinfMinMax(mixed as tf.Tensor4D, x, o.eps);
      });
    } else if (norm === 'L2') {
      next = tf.tidy(() => {
        const eta = tf.tensor(stepSize, [n, 1, 1, 1]);
        const unit = tf.div(grad, tf.add(lpNorm(grad, 'L2', true), 1e-12));
        const z1 = projectL2Apgd(tf.add(xAdv, tf.mul(eta, unit)) as tf.Tensor4D, x, o.eps);
        const grad2 = tf.sub(xAdv, xAdvOld);
        const mixed = tf.add(tf.add(xAdv, tf.mul(tf.sub(z1, xAdv), a)), tf.mul(grad2, 1 - a));
        return projectL2Apgd(mixed as tf.Tensor4D, x, o.eps);
      });
    } else {
      const [adv, g] = (await Promise.all([xAdv.data(), grad.data()])) as Float32Array[];
      next = tf.tensor4d(l1Step(xv!, adv, g, n, d, stepSize, topk, o.eps), x.shape);
    }
    xAdvOld = swap(xAdvOld, xAdv);
    xAdv = next;

    const pr = await probe(target, o.eot, xAdv, y, t, o.loss);
    grad.dispose();
    grad = pr.grad;
    const wrong = Array.from(pr.pred, (p, j) => p !== y[j]);
    wrong.forEach((w, j) => {
      if (w) acc[j] = false;
    });
    xBestAdv = swap(xBestAdv, whereRows(wrong, xAdv, xBestAdv));

    lossSteps[i].set(pr.loss);
    const improved = Array.from(pr.loss, (l, j) => l > lossBest[j]);
    xBest = swap(xBest, whereRows(improved, xAdv, xBest));
    gradBest = swap(gradBest, whereRows(improved, grad, gradBest));
    improved.forEach((imp, j) => {
      if (imp) lossBest[j] = pr.loss[j];
    });

    counter++;
    if (counter === k) {
      let reduce: boolean[];
      if (norm !== 'L1') {
        reduce = Array.from({ length: n }, (_, j) => {
          const osc = oscillated(lossSteps, i, k, o.rho, j);
          const noImprovement = !reducedLastCheck[j] && lossBestLastCheck[j] >= lossBest[j];
          return osc || noImprovement;
        });
        reducedLastCheck = reduce;
        lossBestLastCheck = Float32Array.from(lossBest);
        reduce.forEach((r, j) => {
          if (r) stepSize[j] /= 2;
        });
        k = Math.max(k - sched.decrement, sched.min);
      } else {
        const spCurr = l0Diff((await xBest.data()) as Float32Array, xv!, n, d);
        reduce = spCurr.map((sp, j) => f32(sp / spOld[j]) < f32(0.95));
        const lo = f32((alpha * o.eps) / 10);
        const hi = f32(alpha * o.eps);
        spCurr.forEach((sp, j) => {
          topk[j] = f32(f32(sp / d) / 1.5);
          const s = reduce[j] ? hi : f32(stepSize[j] / 1.5);
          stepSize[j] = Math.min(Math.max(s, lo), hi);
        });
        spOld = spCurr;
      }
      if (reduce.some(Boolean)) {
        xAdv = swap(xAdv, whereRows(reduce, xBest, xAdv));
        grad = swap(grad, whereRows(reduce, gradBest, grad));
      }
      counter = 0;
    }
  }
  tf.dispose([xAdv, xAdvOld, grad, gradBest]);
  if (norm === 'L1') {
    // The float32 projection can land an ulp outside [0,1]; AutoAttack leaves that in its
    // result, we clip it (x_best, the next large-ε stage's start, is left as the reference's).
    xBestAdv = swap(xBestAdv, tf.tidy(() => tf.clipByValue(xBestAdv, 0, 1) as tf.Tensor4D));
  }
  return { xAdv: xBestAdv, fooled: acc.map((c) => !c), xBest, lossBest };
}

/** The iterations of the three stages of AutoAttack's L1 large-ε schedule (decr_eps_pgd). */
export function largeRepsIters(steps: number): number[] {
  const iters = [Math.ceil(0.3 * steps), Math.ceil(0.3 * steps)];
  return [...iters, steps - iters[0] - iters[1]];
}

/**
 * AutoAttack's decr_eps_pgd (L1, use_largereps): start x + t projected at 3ε, then runs at 3ε,
 * 2ε and ε, each from the previous one's highest-loss point re-projected onto its ball. The
 * result is the last run's.
 */
export async function apgdLargeReps(ctx: AttackContext, x: tf.Tensor4D, y: Int32Array, t: Int32Array | null, o: ApgdOptions, init: ApgdInit = {}): Promise<ApgdRun> {
  const epss = [3 * o.eps, 2 * o.eps, o.eps];
  const iters = largeRepsIters(o.steps);
  const d = x.size / x.shape[0];
  const xv = (await x.data()) as Float32Array;
  const reproject = async (pt: tf.Tensor4D, eps: number): Promise<tf.Tensor4D> => {
    const pv = (await pt.data()) as Float32Array;
    const delta = Float32Array.from(pv, (v, j) => f32(v - xv[j]));
    const p = l1BoxProjection(xv, delta, d, eps);
    return tf.tensor4d(Float32Array.from(pv, (v, j) => f32(v + p[j])), x.shape);
  };
  const noise = init.noise ?? (normalTensor(ctx.rng, x.shape) as tf.Tensor4D);
  const raw = tf.add(x, noise) as tf.Tensor4D;
  if (!init.noise) noise.dispose();
  let xInit = await reproject(raw, epss[0]).finally(() => raw.dispose());
  let run: ApgdRun | null = null;
  for (let s = 0; s < 3; s++) {
    const projected = await reproject(xInit, epss[s]).finally(() => xInit.dispose());
    if (run) run.xAdv.dispose();
    try {
      run = await apgdSingleRun(ctx, x, y, t, { ...o, eps: epss[s], steps: iters[s] }, projected);
    } finally {
      projected.dispose();
    }
    xInit = run.xBest;
  }
  return run!;
}

/**
 * APGD over a batch (AutoAttack `perturb`): only initially correct points are attacked; each
 * restart (and, targeted, each target rank 2..nTargets+1) attacks the points still robust.
 */
export async function apgdAttack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, o: ApgdOptions, nTargets: number | null = null): Promise<tf.Tensor4D> {
  const K = ctx.target.numClasses;
  if (o.loss === 'dlr' && K < 3) throw new UserError(`apgd-dlr needs at least 3 classes (the DLR loss uses the 3rd largest logit), found ${K}`);
  if (o.loss === 'dlr-targeted' && K < 4) throw new UserError(`apgd-t needs at least 4 classes (targeted DLR uses the 4th largest logit), found ${K}`);
  if (o.largeReps && (o.norm ?? 'Linf') !== 'L1') throw new UserError(`APGD's large-ε schedule (largeReps) is for norm L1 only, not ${o.norm ?? 'Linf'}`);
  const ranks = nTargets === null ? [null] : Array.from({ length: Math.min(nTargets, K - 1) }, (_, i) => i + 2);
  const attempts: Attempt[] = [];
  for (const rank of ranks) {
    for (let r = 0; r < o.restarts; r++) {
      attempts.push(async (xs, ys) => {
        const targets = rank === null ? null : await rankedClass(ctx.target, xs, rank);
        const run = o.largeReps ? await apgdLargeReps(ctx, xs, ys, targets, o) : await apgdSingleRun(ctx, xs, ys, targets, o);
        run.xBest.dispose();
        return { xAdv: run.xAdv, fooled: run.fooled };
      });
    }
  }
  return (await attackRobustRows(ctx.target, x, y, attempts)).xAdv;
}
