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
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { cePerExample, gatherRows, indicesWhere, mergeRows, swap, whereRows } from './common';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt } from './params';
import { attackRobustRows } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

const schema = z
  .object({
    eps: epsParam(8 / 255),
    queries: posInt(5000),
    pInit: z.number().positive().max(1).default(0.8),
    restarts: posInt(1),
    loss: z.enum(['margin', 'ce']).default('margin'),
    /** torchattacks' default; AutoAttack's ensemble uses false. */
    rescaleSchedule: z.boolean().default(true),
  })
  .strict();
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
    const yCurr = Int32Array.from(idx, (i) => y[i]);
    const res = await marginAndLoss(target, xNew, yCurr, p.loss);
    const keep = idx.map((i, j) => {
      const lower = res.loss[j] < lossMin[i];
      if (lower) lossMin[i] = res.loss[j];
      const take = lower || res.margin[j] <= 0;
      if (take) marginMin[i] = res.margin[j];
      queries[i] += 1;
      return take;
    });
    const rows = whereRows(keep, xNew, xBestCurr);
    xBest = swap(xBest, mergeRows(xBest, rows, idx));
    tf.dispose([xCurr, xBestCurr, xNew, rows]);
    if (marginMin.every((m) => m <= 0)) break;
  }
  return { xBest, queries };
}

export async function squareAttack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: SquareParams): Promise<{ xAdv: tf.Tensor4D; queries: number }> {
  let total = 0;
  const run = async (xs: tf.Tensor4D, ys: Int32Array) => {
    const res = await squareSingleRun(ctx, xs, ys, p);
    res.queries.forEach((q) => (total += q));
    return { xAdv: res.xBest };
  };
  const res = await attackRobustRows(ctx.target, x, y, new Array(p.restarts).fill(run));
  return { xAdv: res.xAdv, queries: total };
}

export const square = defineAttack<SquareParams>({
  name: 'square',
  description: 'Square Attack, L∞, score-based black box (random square updates, margin loss) (Andriushchenko et al. 2020)',
  norm: 'linf',
  schema,
  attack: (ctx, x, y, p) => squareAttack(ctx, x, y, p),
});
