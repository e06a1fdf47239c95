// Square Attack L∞ (Andriushchenko et al. 2020), following AutoAttack's square.py, black
// box (logits only, no gradients):
//  * init: vertical stripes, x + ε·s with one random sign s per (example, column, channel);
//  * each iteration draws one square of side s(p) at a random position and one random sign
//    per channel (shared by the batch, as AutoAttack does), adds 2ε·sign to the current best
//    point inside the square, projects to the ε-ball and [0,1], and keeps the candidate per
//    example if it lowers the loss or misclassifies;
//  * p follows the paper's schedule (p_init halved at iterations 10, 50, 200, 500, 1000,
//    2000, 4000, 6000, 8000 — rescaled to a 10 000-query budget when `rescaleSchedule`);
//  * only points still correctly classified are attacked; queries are counted per example.
// Loss 'margin': z_y − max_{j≠y} z_j (minimised); 'ce': −CE. Success: margin ≤ 0.
//
// `norm` L2 / L1 (square.py's L2 and L1 versions; ε then defaults to 0.5 / 12):
//  * init: a grid of s×s blocks, s = ⌊h/5⌋, offset ⌊(h − 5s)/2⌋, each block η(s) times one
//    random sign per (example, channel); L2: x + ε·δ/‖δ‖₂ clipped; L1: x + δ + P(δ) with P the
//    projection onto the L1 ball of radius ε(1 − 1e-6) ∩ box (./l1-projection.ts);
//  * η(s): the top ⌊s/2⌋ rows hold, and the bottom rows minus, a pattern of nested rectangles
//    weighted 1/(k+1)² (L2) or 1/(k+1)⁴ (L1), normalised in the norm, transposed with
//    probability ½;
//  * each iteration (side s = max(round(√(p·h·w)), 3), made odd): two random windows W1, W2;
//    the perturbation in W1 becomes (η(s)·sign + δ_W1/‖δ_W1‖)/‖·‖ scaled to take the budget
//    that zeroing W2 and W1 frees (per channel: √(max(ε² − ‖δ‖², 0)/c + ‖δ_{W1∪W2}‖²) for L2,
//    (max(ε − ‖δ‖₁, 0)/c + ‖δ_{W1∪W2}‖₁)·c for L1), W2 ∖ W1 is zeroed, and the result is
//    rescaled to ‖δ‖₂ = ε and clipped (L2) or projected (L1);
//  * draws per iteration: vh, vw, vh2, vw2, the transpose coin, one sign per (example, channel).
// Blocks of the init grid that reach past the image are cut (square.py fails on such sizes,
// e.g. 12×12).
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { cePerExample, gatherRows, indicesWhere, mergeRows, swap, whereRows } from './common';
import { UserError } from '../errors';
import { noYield } from './interrupt';
import { l1BoxProjection } from './l1-projection';
import { epsByNormParam, epsForNorm, LP_NORMS, lpNorm, normParam, type LpNorm } from './lp';
import { checkLinfBudget, defineAttack, posInt } from './params';
import { attackRobustRows } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

const schema = z
  .object({
    /** Default: 8/255 for L∞ (torchattacks), 0.5 for L2, 12 for L1 (AutoAttack). */
    eps: epsByNormParam(),
    norm: normParam(LP_NORMS, 'Linf'),
    queries: posInt(5000),
    pInit: z.number().positive().max(1).default(0.8),
    restarts: posInt(1),
    loss: z.enum(['margin', 'ce']).default('margin'),
    /** torchattacks' default; AutoAttack's ensemble uses false. */
    rescaleSchedule: z.boolean().default(true),
  })
  .strict()
  .superRefine(checkLinfBudget)
  .transform((p) => epsForNorm<typeof p>(8 / 255)(p));
export type SquareParams = z.output<typeof schema>;

/** Fraction of pixels a square covers at iteration `it` (AutoAttack p_selection). */
export function squareP(it: number, pInit: number, queries: number, rescale: boolean): number {
  const i = rescale ? Math.trunc((it / queries) * 10000) : it;
  const bounds = [10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000];
  let div = 1;
  for (const b of bounds) if (i > b) div *= 2;
  return pInit / div;
}

/** Python's round(): halves go to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const r = v - f;
  if (r > 0.5) return f + 1;
  if (r < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

export function squareSide(p: number, h: number, w: number): number {
  return Math.min(Math.max(roundHalfEven(Math.sqrt(p * h * w)), 1), Math.min(h, w));
}

async function marginAndLoss(target: AttackTarget, x: tf.Tensor4D, y: Int32Array, loss: SquareParams['loss']): Promise<{ margin: Float32Array; loss: Float32Array }> {
  const [marginT, lossT] = tf.tidy(() => {
    const logits = target.logits(x);
    const yOh = tf.cast(tf.oneHot(tf.tensor1d(y, 'int32'), target.numClasses), 'float32') as tf.Tensor2D;
    const real = tf.sum(tf.mul(yOh, logits), 1);
    const other = tf.max(tf.where(tf.cast(yOh, 'bool'), tf.fill(logits.shape, -Infinity), logits), 1);
    return [tf.sub(real, other), loss === 'margin' ? null : tf.neg(cePerExample(logits, yOh))];
  });
  try {
    const margin = (await marginT.data()) as Float32Array;
    return { margin, loss: lossT ? ((await lossT.data()) as Float32Array) : margin };
  } finally {
    tf.dispose([marginT, ...(lossT ? [lossT] : [])]);
  }
}

function randomSign(rng: Rng): number {
  return rng.next() < 0.5 ? -1 : 1;
}

/** Per-example state of a Square run: best loss and margin so far, queries spent. */
interface SquareState {
  lossMin: Float32Array;
  marginMin: Float32Array;
  queries: Float64Array;
}

/**
 * Square's acceptance step, shared by every norm: query the candidates `xNew` of rows `idx`,
 * keep a candidate where it lowers the loss or already fools the model, count one query per
 * row, and return the updated best points (the old tensor is disposed).
 */
async function acceptBetter(target: AttackTarget, loss: SquareParams['loss'], st: SquareState, idx: number[], y: Int32Array, xNew: tf.Tensor4D, xBestCurr: tf.Tensor4D, xBest: tf.Tensor4D): Promise<tf.Tensor4D> {
  const res = await marginAndLoss(target, xNew, Int32Array.from(idx, (i) => y[i]), loss);
  const keep = idx.map((i, j) => {
    const lower = res.loss[j] < st.lossMin[i];
    if (lower) st.lossMin[i] = res.loss[j];
    const take = lower || res.margin[j] <= 0;
    if (take) st.marginMin[i] = res.margin[j];
    st.queries[i] += 1;
    return take;
  });
  const rows = whereRows(keep, xNew, xBestCurr);
  const next = swap(xBest, mergeRows(xBest, rows, idx));
  rows.dispose();
  return next;
}

/** One Square run on the given points; returns the best points and the queries per example. */
async function squareSingleRun(ctx: AttackContext, x: tf.Tensor4D, y: Int32Array, p: SquareParams): Promise<{ xBest: tf.Tensor4D; queries: Float64Array }> {
  const { target, rng } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const [n, h, w, c] = x.shape;
  const stripes = new Float32Array(n * w * c);
  for (let i = 0; i < stripes.length; i++) stripes[i] = randomSign(rng) * p.eps;
  let xBest = tf.tidy(() => tf.clipByValue(tf.add(x, tf.tensor4d(stripes, [n, 1, w, c])), 0, 1) as tf.Tensor4D);
  const init = await marginAndLoss(target, xBest, y, p.loss);
  const marginMin = Float32Array.from(init.margin);
  const lossMin = Float32Array.from(init.loss);
  const queries = new Float64Array(n).fill(1);
  if (marginMin.every((m) => m < 0)) return { xBest, queries };

  const delta = new Float32Array(h * w * c);
  for (let it = 0; it < p.queries; it++) {
    try {
      await yieldPoint();
    } catch (err) {
      xBest.dispose();
      throw err;
    }
    const idx = indicesWhere(Array.from(marginMin, (m) => m > 0));
    const s = squareSide(squareP(it, p.pInit, p.queries, p.rescaleSchedule), h, w);
    const vh = Math.floor(rng.next() * (h - s));
    const vw = Math.floor(rng.next() * (w - s));
    const signs = Array.from({ length: c }, () => 2 * p.eps * randomSign(rng));
    delta.fill(0);
    for (let r = vh; r < vh + s; r++) for (let q = vw; q < vw + s; q++) for (let ch = 0; ch < c; ch++) delta[(r * w + q) * c + ch] = signs[ch];

    const xCurr = gatherRows(x, idx);
    const xBestCurr = gatherRows(xBest, idx);
    const xNew = tf.tidy(() => {
      const moved = tf.add(xBestCurr, tf.tensor4d(delta, [1, h, w, c]));
      return tf.clipByValue(tf.minimum(tf.maximum(moved, tf.sub(xCurr, p.eps)), tf.add(xCurr, p.eps)), 0, 1) as tf.Tensor4D;
    });
    xBest = await acceptBetter(target, p.loss, { lossMin, marginMin, queries }, idx, y, xNew, xBestCurr, xBest);
    tf.dispose([xCurr, xBestCurr, xNew]);
    if (marginMin.every((m) => m <= 0)) break;
  }
  return { xBest, queries };
}

/** square.py's η(s) for L2 / L1, row-major s×s; draws the transpose coin. */
export function squareEta(s: number, norm: 'L2' | 'L1', rng: Rng): Float32Array {
  const pow = norm === 'L2' ? 2 : 4;
  const rect = (rows: number, cols: number): Float64Array => {
    const out = new Float64Array(rows * cols);
    const xc = Math.floor(rows / 2) + 1;
    const yc = Math.floor(cols / 2) + 1;
    let c0 = xc - 1;
    let c1 = yc - 1;
    for (let k = 0; k < Math.max(xc, yc); k++) {
      const w = 1 / (k + 1) ** pow;
      for (let r = Math.max(c0, 0); r < Math.min(c0 + 2 * k + 1, rows); r++) {
        for (let q = Math.max(0, c1); q < Math.min(c1 + 2 * k + 1, cols); q++) out[r * cols + q] += w;
      }
      c0--;
      c1--;
    }
    return normalise(out);
  };
  const normalise = (v: Float64Array): Float64Array => {
    let n = 0;
    for (const e of v) n += norm === 'L2' ? e * e : Math.abs(e);
    n = norm === 'L2' ? Math.sqrt(n) : n;
    return v.map((e) => e / n);
  };
  const half = Math.floor(s / 2);
  const delta = new Float64Array(s * s);
  delta.set(rect(half, s), 0);
  rect(s - half, s).forEach((e, i) => (delta[half * s + i] = -e));
  const eta = normalise(delta);
  const out = new Float32Array(s * s);
  const transpose = rng.next() > 0.5;
  for (let r = 0; r < s; r++) for (let q = 0; q < s; q++) out[r * s + q] = transpose ? eta[q * s + r] : eta[r * s + q];
  return out;
}

/** One sign per (example, channel): a [n, 1, 1, c] tensor. */
function signsTensor(rng: Rng, n: number, c: number): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from({ length: n * c }, () => randomSign(rng)), [n, 1, 1, c]);
}

/** η placed at rows r0.., columns q0.. of an h×w map (cut at the border): [1, h, w, 1]. */
function placed(eta: Float32Array, s: number, r0: number, q0: number, h: number, w: number): tf.Tensor4D {
  const map = new Float32Array(h * w);
  for (let r = 0; r < s && r0 + r < h; r++) for (let q = 0; q < s && q0 + q < w; q++) map[(r0 + r) * w + q0 + q] = eta[r * s + q];
  return tf.tensor4d(map, [1, h, w, 1]);
}

function windowMask(s: number, r0: number, q0: number, h: number, w: number): tf.Tensor4D {
  return placed(new Float32Array(s * s).fill(1), s, r0, q0, h, w);
}

/** x + δ + P(δ) (L1: the projection onto the ε-ball ∩ box, on the host). */
async function l1Apply(x: tf.Tensor4D, delta: tf.Tensor4D, eps: number): Promise<tf.Tensor4D> {
  const d = x.size / x.shape[0];
  const [xv, dv] = (await Promise.all([x.data(), delta.data()])) as Float32Array[];
  const p = l1BoxProjection(xv, dv, d, eps);
  return tf.tensor4d(Float32Array.from(xv, (v, j) => Math.fround(Math.fround(v + dv[j]) + p[j])), x.shape);
}

/** One Square L2 / L1 run (square.py attack_single_run, norm 'L2' / 'L1'). */
async function squareSingleRunLp(ctx: AttackContext, x: tf.Tensor4D, y: Int32Array, p: SquareParams, norm: 'L2' | 'L1'): Promise<{ xBest: tf.Tensor4D; queries: Float64Array }> {
  const { target, rng } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const [n, h, w, c] = x.shape;
  const l1Eps = p.eps * (1 - 1e-6);
  // Init: the block grid.
  const s0 = Math.floor(h / 5);
  const sp = Math.floor((h - s0 * 5) / 2);
  let deltaInit: tf.Tensor4D = tf.zeros(x.shape);
  for (let bi = 0, vh = sp; bi < Math.floor(h / s0); bi++, vh += s0) {
    for (let bj = 0, vw = sp; bj < Math.floor(w / s0); bj++, vw += s0) {
      const eta = placed(squareEta(s0, norm, rng), s0, vh, vw, h, w);
      const signs = signsTensor(rng, n, c);
      deltaInit = swap(deltaInit, tf.tidy(() => tf.add(deltaInit, tf.mul(eta, signs)) as tf.Tensor4D));
      tf.dispose([eta, signs]);
    }
  }
  let xBest =
    norm === 'L2'
      ? tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(tf.div(deltaInit, tf.add(lpNorm(deltaInit, 'L2', true), 1e-12)), p.eps)), 0, 1) as tf.Tensor4D)
      : await l1Apply(x, deltaInit, l1Eps);
  deltaInit.dispose();
  const init = await marginAndLoss(target, xBest, y, p.loss);
  const marginMin = Float32Array.from(init.margin);
  const lossMin = Float32Array.from(init.loss);
  const queries = new Float64Array(n).fill(1);
  if (marginMin.every((m) => m < 0)) return { xBest, queries };

  for (let it = 0; it < p.queries; it++) {
    try {
      await yieldPoint();
    } catch (err) {
      xBest.dispose();
      throw err;
    }
    const idx = indicesWhere(Array.from(marginMin, (m) => m > 0));
    const pSel = squareP(it, p.pInit, p.queries, p.rescaleSchedule);
    let s = Math.max(roundHalfEven(Math.sqrt((pSel * (c * h * w)) / c)), 3);
    if (s % 2 === 0) s += 1;
    s = Math.min(s, Math.min(h, w));
    const vh = Math.floor(rng.next() * (h - s));
    const vw = Math.floor(rng.next() * (w - s));
    const vh2 = Math.floor(rng.next() * (h - s));
    const vw2 = Math.floor(rng.next() * (w - s));
    const eta = placed(squareEta(s, norm, rng), s, vh, vw, h, w);
    const signs = signsTensor(rng, idx.length, c);
    const m1 = windowMask(s, vh, vw, h, w);
    const m2 = windowMask(s, vh2, vw2, h, w);

    const xCurr = gatherRows(x, idx);
    const xBestCurr = gatherRows(xBest, idx);
    const deltaNew = tf.tidy(() => {
      const delta = tf.sub(xBestCurr, xCurr);
      const windowNorm = (v: tf.Tensor) => (norm === 'L2' ? tf.sqrt(tf.sum(tf.square(v), [1, 2], true)) : tf.sum(tf.abs(v), [1, 2], true));
      const nw1 = windowNorm(tf.mul(delta, m1));
      const normImage = lpNorm(delta, norm, true);
      const maskImage = tf.maximum(m1, m2);
      const nws = windowNorm(tf.mul(delta, maskImage));
      let fresh = tf.add(tf.mul(eta, signs), tf.div(tf.mul(delta, m1), tf.add(nw1, 1e-12)));
      const budget =
        norm === 'L2'
          ? tf.sqrt(tf.add(tf.div(tf.maximum(tf.sub(p.eps * p.eps, tf.square(normImage)), 0), c), tf.square(nws)))
          : tf.mul(tf.add(tf.div(tf.maximum(tf.sub(p.eps, normImage), 0), c), nws), c);
      fresh = tf.mul(tf.div(fresh, tf.add(windowNorm(fresh), 1e-12)), budget);
      return tf.add(tf.mul(delta, tf.sub(1, maskImage)), fresh) as tf.Tensor4D;
    });
    const xNew =
      norm === 'L2'
        ? tf.tidy(() => tf.clipByValue(tf.add(xCurr, tf.mul(tf.div(deltaNew, tf.add(lpNorm(deltaNew, 'L2', true), 1e-12)), p.eps)), 0, 1) as tf.Tensor4D)
        : await l1Apply(xCurr, deltaNew, l1Eps);
    xBest = await acceptBetter(target, p.loss, { lossMin, marginMin, queries }, idx, y, xNew, xBestCurr, xBest);
    tf.dispose([eta, signs, m1, m2, xCurr, xBestCurr, deltaNew, xNew]);
    if (marginMin.every((m) => m <= 0)) break;
  }
  return { xBest, queries };
}

export async function squareAttack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: SquareParams): Promise<{ xAdv: tf.Tensor4D; queries: number }> {
  if (p.norm !== 'Linf' && x.shape[1] < 5) {
    throw new UserError(`square with norm ${p.norm} needs images at least 5 pixels high (its start tiles ⌊h/5⌋-pixel blocks), got ${x.shape[1]}×${x.shape[2]}`);
  }
  let total = 0;
  const run = async (xs: tf.Tensor4D, ys: Int32Array) => {
    const res = p.norm === 'Linf' ? await squareSingleRun(ctx, xs, ys, p) : await squareSingleRunLp(ctx, xs, ys, p, p.norm);
    res.queries.forEach((q) => (total += q));
    return { xAdv: res.xBest };
  };
  const res = await attackRobustRows(ctx.target, x, y, new Array(p.restarts).fill(run));
  return { xAdv: res.xAdv, queries: total };
}

export const square = defineAttack<SquareParams>({
  name: 'square',
  description: 'Square Attack, L∞ (or L2 / L1 via norm), score-based black box (random square updates, margin loss) (Andriushchenko et al. 2020; Croce & Hein 2021)',
  norm: 'linf',
  schema,
  attack: (ctx, x, y, p) => squareAttack(ctx, x, y, p),
});
