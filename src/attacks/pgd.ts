// PGD-L∞ (docs/method.md §5, torchattacks semantics): start x + U(−ε, ε) clipped to [0,1], then
// `steps` times x ← clip01(x + clip(x + α·sign(∇ CE_mean) − x, ±ε)). α defaults to the
// authors' ε/steps·2.3. With restarts > 1 each restart attacks only the examples no earlier
// restart fooled; per example the result is the first fooling one, else the highest-CE one.
// `eot` > 1: each gradient is the mean over that many stochastic forwards (./eot.ts).
import { z } from 'zod';
import { pgdStepSize } from '../config/schema';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { ceMean, cePerExample, inputGrad, oneHot, projectLinf, swap, uniformTensor } from './common';
import { Eot, eotInputGrad, eotParam, withEotExtra } from './eot';
import { noYield } from './interrupt';
import { defineAttack, epsParam, posInt, stepParam } from './params';
import { attackRobustRows } from './robust-rows';
import type { AttackContext, AttackTarget } from './types';

export interface PgdLinfOptions {
  eps: number;
  alpha: number;
  steps: number;
  /** Starting point (default: x itself). Not disposed. */
  start?: tf.Tensor4D;
  /** Objective to ascend (default: batch-mean CE). */
  loss?: (xAdv: tf.Tensor4D) => tf.Scalar;
  /** EOT for the default CE objective (ignored with `loss`). */
  eot?: Eot;
}

/** torchattacks' random start: clip01(x + U(−ε, ε)). */
export function pgdRandomStart(rng: Rng, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.add(x, uniformTensor(rng, x.shape, -eps, eps)), 0, 1) as tf.Tensor4D);
}

/** The PGD iterations from a given start; returns a new tensor. */
export async function pgdLinf(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, yOneHot: tf.Tensor2D, opts: PgdLinfOptions): Promise<tf.Tensor4D> {
  const { target } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const loss = opts.loss ?? ((xa: tf.Tensor4D) => ceMean(target.logits(xa), yOneHot));
  const eot = !opts.loss && opts.eot?.active ? opts.eot : null;
  let adv = tf.clone(opts.start ?? x);
  try {
    for (let i = 0; i < opts.steps; i++) {
      await yieldPoint();
      const g = eot ? eotInputGrad(eot, (logits) => ceMean(logits, yOneHot), adv) : null;
      const next = tf.tidy(() => {
        const grad = g ?? inputGrad(loss, adv);
        return projectLinf(tf.add(adv, tf.mul(tf.sign(grad), opts.alpha)) as tf.Tensor4D, x, opts.eps);
      });
      g?.dispose();
      adv = swap(adv, next);
    }
  } catch (err) {
    adv.dispose();
    throw err;
  }
  return adv;
}

const schema = z
  .object({
    eps: epsParam(0.03),
    /** Step size; default ε/steps·2.3 (the authors' test-time rule). */
    alpha: stepParam().optional(),
    steps: posInt(10),
    randomStart: z.boolean().default(true),
    restarts: posInt(1),
    eot: eotParam(),
  })
  .strict()
  .transform((p) => ({ ...p, alpha: p.alpha ?? pgdStepSize(p.eps, p.steps) }));
export type PgdParams = z.output<typeof schema>;

/** One PGD run (random start if asked) on a batch. */
async function pgdOnce(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: PgdParams, eot?: Eot): Promise<tf.Tensor4D> {
  const yOh = oneHot(y, ctx.target.numClasses);
  const start = p.randomStart ? pgdRandomStart(ctx.rng, x, p.eps) : undefined;
  try {
    return await pgdLinf(ctx, x, yOh, { eps: p.eps, alpha: p.alpha, steps: p.steps, start, eot });
  } finally {
    start?.dispose();
    yOh.dispose();
  }
}

/** Per-example (fooled, CE) of a candidate batch. */
async function judge(target: AttackTarget, xAdv: tf.Tensor4D, y: Int32Array): Promise<{ fooled: boolean[]; ce: Float32Array }> {
  const [pred, ce] = tf.tidy(() => {
    const logits = target.logits(xAdv);
    return [tf.argMax(logits, 1), cePerExample(logits, oneHot(tf.tensor1d(y, 'int32'), target.numClasses))];
  });
  try {
    const [p, c] = await Promise.all([pred.data(), ce.data()]);
    return { fooled: Array.from(p, (v, i) => v !== y[i]), ce: c as Float32Array };
  } finally {
    tf.dispose([pred, ce]);
  }
}

/**
 * PGD with restarts: every row is attacked by the first run; each further run attacks the rows
 * no earlier run fooled and replaces a row's result when it fools or raises the CE.
 */
export async function pgdWithRestarts(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: PgdParams, eot?: Eot): Promise<tf.Tensor4D> {
  // One run needs no bookkeeping (the training adversary's hot path).
  if (p.restarts === 1) return pgdOnce(ctx, x, y, p, eot);
  // Best CE so far per row; −∞ before the first run, so that run's result is always taken.
  const bestCe = new Float32Array(x.shape[0]).fill(-Infinity);
  const run = async (xs: tf.Tensor4D, ys: Int32Array, idx: readonly number[]) => {
    const yT = tf.tensor1d(ys, 'int32');
    try {
      const xAdv = await pgdOnce(ctx, xs, yT, p, eot);
      const res = await judge(ctx.target, xAdv, ys);
      // `!(≤)`: a NaN CE still takes the first run's result.
      const take = res.fooled.map((f, j) => f || !(res.ce[j] <= bestCe[idx[j]]));
      take.forEach((t, j) => {
        if (t) bestCe[idx[j]] = res.ce[j];
      });
      return { xAdv, fooled: res.fooled, take };
    } finally {
      yT.dispose();
    }
  };
  const res = await attackRobustRows(ctx.target, x, y, new Array(p.restarts).fill(run), { start: 'all' });
  return res.xAdv;
}

export const pgd = defineAttack<PgdParams>({
  name: 'pgd',
  description: 'Projected gradient descent, L∞, random start, α = ε/steps·2.3 (Madry et al. 2018)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    return withEotExtra({ xAdv: await pgdWithRestarts(ctx, x, y, p, eot) }, eot);
  },
});
