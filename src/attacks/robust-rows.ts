// The robust-rows loop of torchattacks' MultiAttack and AutoAttack's `perturb`, written once:
// run a list of attempts in order, each only on the rows still robust, and merge the rows an
// attempt fools (or otherwise wants kept) into the output. Every ensemble, restart and
// target-class loop of the attacks goes through here.
import { tf } from '../engine/tf';
import { gatherRows, indicesWhere, labelsOf, mergeRows, predict, swap } from './common';
import type { AttackTarget } from './types';

export interface AttemptOutcome {
  /** Candidate rows for the attempted rows, in their order. Disposed by the loop. */
  xAdv: tf.Tensor4D;
  /** Which attempted rows count as fooled (default: the target misclassifies the candidate). */
  fooled?: boolean[];
  /** Which attempted rows replace the output's (default: the fooled ones). */
  take?: boolean[];
}

/** One attempt on the rows still robust: `xs` their inputs, `ys` their labels, `idx` their rows in the batch. */
export type Attempt = (xs: tf.Tensor4D, ys: Int32Array, idx: readonly number[]) => Promise<AttemptOutcome>;

export interface RobustRowsOptions {
  /**
   * Which rows start robust: those the target classifies correctly (AutoAttack, MultiAttack:
   * a misclassified clean point needs no attack), or all of them.
   */
  start?: 'correct' | 'all';
}

export interface RobustRowsResult {
  xAdv: tf.Tensor4D;
  /** Per row: still robust after every attempt. */
  robust: boolean[];
  /** Fraction of rows robust before the first attempt, then after each attempt. */
  robustFraction: number[];
}

export async function attackRobustRows(
  target: AttackTarget,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  attempts: Iterable<Attempt>,
  opts: RobustRowsOptions = {},
): Promise<RobustRowsResult> {
  const labels = await labelsOf(y);
  const n = labels.length;
  let robust: boolean[];
  if ((opts.start ?? 'correct') === 'all') robust = new Array<boolean>(n).fill(true);
  else {
    const clean = await predict(target, x);
    robust = Array.from(clean, (p, i) => p === labels[i]);
  }
  const share = () => (n === 0 ? 0 : robust.filter(Boolean).length / n);
  const robustFraction = [share()];
  let out = tf.clone(x);
  try {
    for (const attempt of attempts) {
      const idx = indicesWhere(robust);
      if (idx.length === 0) {
        robustFraction.push(0);
        continue;
      }
      const xs = gatherRows(x, idx);
      const ys = Int32Array.from(idx, (i) => labels[i]);
      let res: AttemptOutcome | null = null;
      try {
        res = await attempt(xs, ys, idx);
        const fooled = res.fooled ?? Array.from(await predict(target, res.xAdv), (p, j) => p !== ys[j]);
        const take = res.take ?? fooled;
        const rows = indicesWhere(take);
        fooled.forEach((f, j) => {
          if (f) robust[idx[j]] = false;
        });
        if (rows.length > 0) {
          const picked = gatherRows(res.xAdv, rows);
          out = swap(out, mergeRows(out, picked, rows.map((j) => idx[j])));
          picked.dispose();
        }
      } finally {
        xs.dispose();
        res?.xAdv.dispose();
      }
      robustFraction.push(share());
    }
  } catch (err) {
    out.dispose();
    throw err;
  }
  return { xAdv: out, robust, robustFraction };
}
