// APGD-L∞ (Croce & Hein 2020), following AutoAttack's autopgd_base.py:
//  * start x + ε·t/‖t‖∞, t ~ U(−1, 1)^d, clipped to [0,1];
//  * step size η = 2ε per example; momentum step
//      z = P(x_k + η·sign ∇),  x_{k+1} = P(x_k + a(z − x_k) + (1 − a)(x_k − x_{k−1})),
//    a = 1 at the first iteration, 0.75 after (P: clip to the ε-ball, then to [0,1]);
//  * checkpoints: after k₀ = max(⌊.22·N⌋, 1) iterations, then every k ← max(k − max(⌊.03·N⌋, 1),
//    max(⌊.06·N⌋, 1)) more; at each, an example whose loss increased on ≤ ρ·k of the last k
//    steps, or whose best loss did not improve since the last checkpoint (unless its step was
//    just halved), gets its step halved and restarts from its best-loss point;
//  * the result is the last misclassified iterate (x if there was none).
// Gradients are of the per-example loss summed over the batch (only its sign is used).
// Losses: CE; DLR = −(z_y − max_{j≠y} z_j)/(z_π1 − z_π3 + 1e-12); targeted DLR =
// −(z_y − z_t)/(z_π1 − ½(z_π3 + z_π4) + 1e-12), π the logits sorted in decreasing order.
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { UserError } from '../errors';
import { backendReadsSync } from '../engine/reads';
import { cePerExample, projectLinfMinMax, rankedClass, readTidy, swap, uniformTensor, whereRows } from './common';
import { noYield } from './interrupt';
import { attackRobustRows, type Attempt } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

export type ApgdLoss = 'ce' | 'dlr' | 'dlr-targeted';

export interface ApgdOptions {
  eps: number;
  steps: number;
  restarts: number;
  rho: number;
  loss: ApgdLoss;
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

async function probe(target: AttackTarget, xAdv: tf.Tensor4D, y: Int32Array, t: Int32Array | null, loss: ApgdLoss): Promise<Probe> {
  // DLR's sort needs the logits on the host inside the tape; a backend that cannot read
  // synchronously gets them from an extra forward before it (the same values).
  const ahead = loss !== 'ce' && !backendReadsSync() ? await readTidy(() => target.logits(xAdv)) : undefined;
  let lossKept!: tf.Tensor1D;
  let logitsKept!: tf.Tensor2D;
  const grad = tf.grad((xi: tf.Tensor) => {
    logitsKept = tf.keep(target.logits(xi as tf.Tensor4D));
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

/**
 * One APGD run on a batch. `start` replaces the random start (AutoAttack's x_init); it is
 * clipped to [0,1] and not disposed.
 */
export async function apgdSingleRun(
  ctx: AttackContext,
  x: tf.Tensor4D,
  y: Int32Array,
  t: Int32Array | null,
  o: ApgdOptions,
  start?: tf.Tensor4D,
): Promise<ApgdRun> {
  const { target, rng } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const n = x.shape[0];
  const sched = apgdSchedule(o.steps);
  let xAdv = tf.tidy(() => {
    if (start) return tf.clipByValue(start, 0, 1) as tf.Tensor4D;
    const u = uniformTensor(rng, x.shape, -1, 1);
    const scale = tf.div(o.eps, tf.add(tf.max(tf.abs(u), [1, 2, 3], true), 1e-12));
    return tf.clipByValue(tf.add(x, tf.mul(u, scale)), 0, 1) as tf.Tensor4D;
  });
  let xBest = tf.clone(xAdv);
  let xBestAdv = tf.clone(xAdv);
  let xAdvOld = tf.clone(xAdv);
  const first = await probe(target, xAdv, y, t, o.loss);
  let grad = first.grad;
  let gradBest = tf.clone(grad);
  const acc = Array.from(first.pred, (p, i) => p === y[i]);
  const lossBest = Float32Array.from(first.loss);
  const lossSteps = Array.from({ length: o.steps }, () => new Float32Array(n));
  const stepSize = new Float32Array(n).fill(2 * o.eps);
  let lossBestLastCheck = Float32Array.from(lossBest);
  let reducedLastCheck = new Array<boolean>(n).fill(true);
  let k = sched.first;
  let counter = 0;

  for (let i = 0; i < o.steps; i++) {
    try {
      await yieldPoint();
    } catch (err) {
      tf.dispose([xAdv, xAdvOld, grad, gradBest, xBest, xBestAdv]);
      throw err;
    }
    const a = i > 0 ? 0.75 : 1.0;
    const next = tf.tidy(() => {
      const eta = tf.tensor(stepSize, [n, 1, 1, 1]);
      const z1 = projectLinfMinMax(tf.add(xAdv, tf.mul(eta, tf.sign(grad))) as tf.Tensor4D, x, o.eps);
      const grad2 = tf.sub(xAdv, xAdvOld);
      const mixed = tf.add(tf.add(xAdv, tf.mul(tf.sub(z1, xAdv), a)), tf.mul(grad2, 1 - a));
      return projectLinfMinMax(mixed as tf.Tensor4D, x, o.eps);
    });
    xAdvOld = swap(xAdvOld, xAdv);
    xAdv = next;

    const pr = await probe(target, xAdv, y, t, o.loss);
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
      const reduce = Array.from({ length: n }, (_, j) => {
        const osc = oscillated(lossSteps, i, k, o.rho, j);
        const noImprovement = !reducedLastCheck[j] && lossBestLastCheck[j] >= lossBest[j];
        return osc || noImprovement;
      });
      reducedLastCheck = reduce;
      lossBestLastCheck = Float32Array.from(lossBest);
      if (reduce.some(Boolean)) {
        reduce.forEach((r, j) => {
          if (r) stepSize[j] /= 2;
        });
        xAdv = swap(xAdv, whereRows(reduce, xBest, xAdv));
        grad = swap(grad, whereRows(reduce, gradBest, grad));
      }
      k = Math.max(k - sched.decrement, sched.min);
      counter = 0;
    }
  }
  tf.dispose([xAdv, xAdvOld, grad, gradBest]);
  return { xAdv: xBestAdv, fooled: acc.map((c) => !c), xBest, lossBest };
}

/**
 * APGD over a batch (AutoAttack `perturb`): only initially correct points are attacked; each
 * restart (and, targeted, each target rank 2..nTargets+1) attacks the points still robust.
 */
export async function apgdAttack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, o: ApgdOptions, nTargets: number | null = null): Promise<tf.Tensor4D> {
  const K = ctx.target.numClasses;
  if (o.loss === 'dlr' && K < 3) throw new UserError(`apgd-dlr needs at least 3 classes (the DLR loss uses the 3rd largest logit), found ${K}`);
  if (o.loss === 'dlr-targeted' && K < 4) throw new UserError(`apgd-t needs at least 4 classes (targeted DLR uses the 4th largest logit), found ${K}`);
  const ranks = nTargets === null ? [null] : Array.from({ length: Math.min(nTargets, K - 1) }, (_, i) => i + 2);
  const attempts: Attempt[] = [];
  for (const rank of ranks) {
    for (let r = 0; r < o.restarts; r++) {
      attempts.push(async (xs, ys) => {
        const targets = rank === null ? null : await rankedClass(ctx.target, xs, rank);
        const run = await apgdSingleRun(ctx, xs, ys, targets, o);
        run.xBest.dispose();
        return { xAdv: run.xAdv, fooled: run.fooled };
      });
    }
  }
  return (await attackRobustRows(ctx.target, x, y, attempts)).xAdv;
}
