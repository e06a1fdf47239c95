// PGD-L∞ (method.md §5, torchattacks semantics): start x + U(−ε, ε) clipped to [0,1], then
// `steps` times x ← clip01(x + clip(x + α·sign(∇ CE_mean) − x, ±ε)). α defaults to the
// authors' ε/steps·2.3. With restarts > 1 each restart attacks only the examples no earlier
// restart fooled; per example the result is the first fooling one, else the highest-CE one.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import {
  ceMean,
  cePerExample,
  gatherRows,
  indicesWhere,
  inputGrad,
  labelsOf,
  mergeRows,
  oneHot,
  projectLinf,
  swap,
  uniformTensor,
} from './common';
import { defineAttack, epsParam, posInt, stepParam } from './params';
import type { AttackTarget } from './types';

export interface PgdLinfOptions {
  eps: number;
  alpha: number;
  steps: number;
  /** Starting point (default: x itself). Not disposed. */
  start?: tf.Tensor4D;
  /** Objective to ascend (default: batch-mean CE). */
  loss?: (xAdv: tf.Tensor4D) => tf.Scalar;
}

/** The authors' step rule α = ε/steps·2.3 unless α is given. */
export function pgdAlpha(eps: number, steps: number, alpha?: number): number {
  return alpha ?? (eps / steps) * 2.3;
}

/** torchattacks' random start: clip01(x + U(−ε, ε)). */
export function pgdRandomStart(rng: Rng, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.add(x, uniformTensor(rng, x.shape, -eps, eps)), 0, 1) as tf.Tensor4D);
}

/** The PGD iterations from a given start; returns a new tensor. */
export function pgdLinf(target: AttackTarget, x: tf.Tensor4D, yOneHot: tf.Tensor2D, opts: PgdLinfOptions): tf.Tensor4D {
  const loss = opts.loss ?? ((xa: tf.Tensor4D) => ceMean(target.logits(xa), yOneHot));
  let adv = tf.clone(opts.start ?? x);
  for (let i = 0; i < opts.steps; i++) {
    const next = tf.tidy(() => {
      const g = inputGrad(loss, adv);
      return projectLinf(tf.add(adv, tf.mul(tf.sign(g), opts.alpha)) as tf.Tensor4D, x, opts.eps);
    });
    adv = swap(adv, next);
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
  })
  .strict();
export type PgdParams = z.output<typeof schema>;

/** One PGD run (random start if asked) on a batch. */
function pgdOnce(target: AttackTarget, rng: Rng, x: tf.Tensor4D, y: tf.Tensor1D, p: PgdParams): tf.Tensor4D {
  const yOh = oneHot(y, target.numClasses);
  const start = p.randomStart ? pgdRandomStart(rng, x, p.eps) : undefined;
  const adv = pgdLinf(target, x, yOh, { eps: p.eps, alpha: pgdAlpha(p.eps, p.steps, p.alpha), steps: p.steps, start });
  start?.dispose();
  yOh.dispose();
  return adv;
}

/** Per-example (fooled, CE) of a candidate batch. */
async function judge(target: AttackTarget, xAdv: tf.Tensor4D, y: tf.Tensor1D): Promise<{ fooled: boolean[]; ce: Float32Array }> {
  const [pred, ce] = tf.tidy(() => {
    const logits = target.logits(xAdv);
    return [tf.argMax(logits, 1), cePerExample(logits, oneHot(y, target.numClasses))];
  });
  try {
    const [p, c, lab] = await Promise.all([pred.data(), ce.data(), y.data()]);
    return { fooled: Array.from(p, (v, i) => v !== lab[i]), ce: c as Float32Array };
  } finally {
    tf.dispose([pred, ce]);
  }
}

export async function pgdWithRestarts(target: AttackTarget, rng: Rng, x: tf.Tensor4D, y: tf.Tensor1D, p: PgdParams): Promise<tf.Tensor4D> {
  let best = pgdOnce(target, rng, x, y, p);
  if (p.restarts === 1) return best;
  let { fooled, ce } = await judge(target, best, y);
  const labels = await labelsOf(y);
  for (let r = 1; r < p.restarts; r++) {
    const idx = indicesWhere(fooled.map((f) => !f));
    if (idx.length === 0) break;
    const xs = gatherRows(x, idx);
    const ys = tf.tensor1d(Array.from(idx, (i) => labels[i]), 'int32');
    const cand = pgdOnce(target, rng, xs, ys, p);
    const res = await judge(target, cand, ys);
    const take: number[] = [];
    const takeRows: number[] = [];
    idx.forEach((i, j) => {
      if (res.fooled[j] || res.ce[j] > ce[i]) {
        take.push(i);
        takeRows.push(j);
        fooled[i] = res.fooled[j];
        ce[i] = res.ce[j];
      }
    });
    const rows = gatherRows(cand, takeRows);
    best = swap(best, mergeRows(best, rows, take));
    tf.dispose([xs, ys, cand, rows]);
  }
  return best;
}

export const pgd = defineAttack<PgdParams>({
  name: 'pgd',
  description: 'Projected gradient descent, L∞, random start, α = ε/steps·2.3 (Madry et al. 2018)',
  norm: 'linf',
  schema,
  attack: async ({ target, rng }, x, y, p) => ({ xAdv: await pgdWithRestarts(target, rng, x, y, p) }),
});
