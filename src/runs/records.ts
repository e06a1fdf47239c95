// Shapes of what training writes per epoch (metrics.jsonl / metrics.csv). Defined once.

export interface EpochRecord {
  epoch: number; // 1-based
  lr: number;
  train_loss: number;
  train_acc: number;
  test_acc: number;
  seconds: number;
  images_per_sec: number;
  /** Batches skipped because of a non-finite loss (train.nanPolicy: skip). */
  nan_skipped: number;
  /** Means over the epoch's steps of every logged scalar: ce, ib, kl, hx/<layer>, hy/<layer>, … */
  [key: string]: number;
}

/** Column order of metrics.csv; logged scalars follow in first-seen order. */
export const EPOCH_COLUMNS = ['epoch', 'lr', 'train_loss', 'train_acc', 'test_acc', 'seconds', 'images_per_sec', 'nan_skipped'] as const;

/** Running sums within an epoch; saved in mid-epoch checkpoints so resume is exact. */
export interface EpochAccumulator {
  steps: number;
  seen: number;
  correct: number;
  lossSum: number;
  nanSkipped: number;
  seconds: number;
  logSums: Record<string, number>;
}

export function emptyAccumulator(): EpochAccumulator {
  return { steps: 0, seen: 0, correct: 0, lossSum: 0, nanSkipped: 0, seconds: 0, logSums: {} };
}
