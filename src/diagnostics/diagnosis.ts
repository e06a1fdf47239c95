// What every gradient-masking check works on: the defended model as an attack target, a fixed
// set of test examples (host memory, batched), and per-example bookkeeping. A check asks "which
// examples stay correctly classified under this attack?" and gets one flag per example; the
// attack runs only on the rows still in question (AutoAttack's robust-rows habit), so a check
// costs little once most examples have fallen.
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { getAttack } from '../attacks/registry';
import { predict } from '../attacks/common';
import { noYield, type YieldPoint } from '../attacks/interrupt';
import type { AttackTarget, ExtraLoss } from '../attacks/types';
import type { Batch } from '../data';
import type { ForwardOptions, Model } from '../models/types';

export interface DiagnosisInput {
  target: AttackTarget;
  /** The examples, in batches (pixels in [0, 1], NHWC). */
  batches: readonly Batch[];
  /** L∞ budget of the evaluation being checked. */
  eps: number;
  seed: number;
  yieldPoint?: YieldPoint;
  /** The model's own IB objective, for the adaptive attack (IB-trained models only). */
  adaptiveLoss?: ExtraLoss;
  /** An independently trained model of the same architecture, for the transfer check. */
  surrogate?: AttackTarget;
  /** The model behind `target` (with the evaluation's channel mask), for per-layer gradients. */
  model?: { forward: Model['forward']; tapNames: readonly string[]; channelMask?: ForwardOptions['channelMask'] };
}

export class Diagnosis {
  readonly n: number;
  readonly labels: Int32Array;
  readonly yieldPoint: YieldPoint;
  private clean: boolean[] | null = null;

  constructor(readonly input: DiagnosisInput) {
    this.n = input.batches.reduce((s, b) => s + b.n, 0);
    this.labels = new Int32Array(this.n);
    let o = 0;
    for (const b of input.batches) {
      this.labels.set(b.y, o);
      o += b.n;
    }
    this.yieldPoint = input.yieldPoint ?? noYield;
  }

  get target(): AttackTarget {
    return this.input.target;
  }

  get numClasses(): number {
    return this.input.target.numClasses;
  }

  /** A fresh random stream per use, so that a check's numbers do not depend on which ran before. */
  rng(label: string): Rng {
    return new Rng(this.input.seed).fork(`diagnose-${label}`);
  }

  /** Per example: classified correctly without any attack. */
  async cleanCorrect(): Promise<boolean[]> {
    if (!this.clean) {
      const out: boolean[] = [];
      for (const b of this.input.batches) {
        const x = tf.tensor4d(b.x, [b.n, ...b.shape]);
        const p = await predict(this.target, x).finally(() => x.dispose());
        p.forEach((v, i) => out.push(v === b.y[i]));
      }
      this.clean = out;
    }
    return [...this.clean];
  }

  /**
   * Run `fn` on the rows flagged in `rows`, batch by batch, with their inputs and labels as
   * tensors; `fn` returns one flag per row it was given (true: still correct).
   */
  async onRows(rows: readonly boolean[], fn: (x: tf.Tensor4D, y: tf.Tensor1D, labels: Int32Array, batch: number) => Promise<boolean[]>): Promise<boolean[]> {
    const out = rows.map(() => false);
    let offset = 0;
    for (const [k, b] of this.input.batches.entries()) {
      const idx: number[] = [];
      for (let i = 0; i < b.n; i++) if (rows[offset + i]) idx.push(i);
      if (idx.length > 0) {
        const size = b.shape[0] * b.shape[1] * b.shape[2];
        const xs = new Float32Array(idx.length * size);
        idx.forEach((i, j) => xs.set(b.x.subarray(i * size, (i + 1) * size), j * size));
        const labels = Int32Array.from(idx, (i) => b.y[i]);
        const x = tf.tensor4d(xs, [idx.length, ...b.shape]);
        const y = tf.tensor1d(labels, 'int32');
        try {
          const flags = await fn(x, y, labels, k);
          idx.forEach((i, j) => (out[offset + i] = flags[j]));
        } finally {
          tf.dispose([x, y]);
        }
      }
      offset += b.n;
    }
    return out;
  }

  /** Per example: still correct under a registered attack (run only on `rows`, default the clean-correct ones). */
  async robustUnder(attack: string, params: Record<string, unknown>, label: string, rows?: readonly boolean[], target: AttackTarget = this.target): Promise<boolean[]> {
    const start = rows ?? (await this.cleanCorrect());
    const a = getAttack(attack);
    return this.onRows(start, async (x, y, labels, batch) => {
      const res = await a.run({ target, rng: this.rng(`${label}-${batch}`), yieldPoint: this.yieldPoint, extraLoss: this.input.adaptiveLoss }, x, y, params as never);
      // Judged on the defended model (for transfer, `target` is the surrogate).
      const pred = await predict(this.target, res.xAdv).finally(() => res.xAdv.dispose());
      return Array.from(pred, (p, j) => p === labels[j]);
    });
  }
}

export function accuracy(flags: readonly boolean[]): number {
  return flags.length === 0 ? 0 : flags.filter(Boolean).length / flags.length;
}

/** Percentage points, for messages. */
export function pts(a: number): string {
  return `${(100 * a).toFixed(2)} %`;
}
