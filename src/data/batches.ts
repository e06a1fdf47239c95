// Deterministic batching. Everything random about an epoch (the shuffle, and each position's
// crop offset and flip) is drawn up front from Rng(seed).fork('data-epoch-' + epoch), so a
// batch is a pure function of (split, seed, epoch, step): a run resumed at epoch e, step k
// sees exactly the batches the uninterrupted run would have seen.
import { Rng } from '../engine/rng';
import { UserError } from '../errors';
import { bytesToUnit, cropFlipInto } from './augment';
import type { AugmentOptions, Batch, Split } from './types';

export interface TrainBatchOptions {
  batchSize: number;
  seed: number;
  epoch: number;
  /** Reshuffle each epoch (PyTorch DataLoader shuffle=True). Default true. */
  shuffle?: boolean;
  /** Crop/flip augmentation; null/undefined or all-off means none. */
  augment?: AugmentOptions | null;
  /** Skip the first `startStep` batches of the epoch (resume mid-epoch). */
  startStep?: number;
}

/** Batches per epoch; the last partial batch is kept (DataLoader drop_last=False). */
export function stepsPerEpoch(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

export interface EpochPlan {
  /** Split index of the image at each epoch position. */
  order: Int32Array;
  /** Per-position crop shift (i - p, j - p), or null without cropping. */
  dy: Int16Array | null;
  dx: Int16Array | null;
  /** Per-position flip flag, or null without flipping. */
  flip: Uint8Array | null;
}

export function epochRng(seed: number, epoch: number): Rng {
  return new Rng(seed).fork('data-epoch-' + epoch);
}

export function epochPlan(n: number, seed: number, epoch: number, shuffle: boolean, augment?: AugmentOptions | null): EpochPlan {
  const rng = epochRng(seed, epoch);
  let order: Int32Array;
  if (shuffle) {
    order = rng.fork('shuffle').permutation(n);
  } else {
    order = new Int32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
  }
  const pad = augment?.cropPadding ?? 0;
  let dy: Int16Array | null = null;
  let dx: Int16Array | null = null;
  if (pad > 0) {
    // torchvision RandomCrop.get_params: i = randint(0, h + 2p - h + 1), then j likewise.
    const r = rng.fork('crop');
    dy = new Int16Array(n);
    dx = new Int16Array(n);
    for (let k = 0; k < n; k++) {
      dy[k] = r.int(2 * pad + 1) - pad;
      dx[k] = r.int(2 * pad + 1) - pad;
    }
  }
  let flip: Uint8Array | null = null;
  if (augment?.horizontalFlip) {
    // RandomHorizontalFlip: flip when rand < 0.5.
    const r = rng.fork('flip');
    flip = new Uint8Array(n);
    for (let k = 0; k < n; k++) flip[k] = r.next() < 0.5 ? 1 : 0;
  }
  return { order, dy, dx, flip };
}

function checkBatchSize(batchSize: number): void {
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new UserError(`batch size must be a positive integer, found ${batchSize}`);
  }
}

/** Training batches of one epoch: shuffled and augmented as (seed, epoch) dictate. */
export function* trainBatches(split: Split, opts: TrainBatchOptions): Generator<Batch> {
  const { batchSize, seed, epoch } = opts;
  checkBatchSize(batchSize);
  const plan = epochPlan(split.n, seed, epoch, opts.shuffle ?? true, opts.augment);
  const [h, w, c] = split.shape;
  const size = h * w * c;
  const steps = stepsPerEpoch(split.n, batchSize);
  const pad = opts.augment?.cropPadding ?? 0;
  const first = opts.startStep ?? 0;
  if (!Number.isInteger(first) || first < 0 || first > steps) {
    throw new UserError(`startStep must be an integer in 0..${steps} (batches per epoch), found ${first}`);
  }
  for (let step = first; step < steps; step++) {
    const start = step * batchSize;
    const n = Math.min(batchSize, split.n - start);
    const x = new Float32Array(n * size);
    const y = new Int32Array(n);
    const indices = plan.order.slice(start, start + n);
    for (let b = 0; b < n; b++) {
      const pos = start + b;
      const idx = indices[b];
      y[b] = split.labels[idx];
      const flip = plan.flip !== null && plan.flip[pos] === 1;
      if (pad > 0 || flip) {
        const dy = plan.dy ? plan.dy[pos] : 0;
        const dx = plan.dx ? plan.dx[pos] : 0;
        cropFlipInto(split.images, idx * size, h, w, c, dy, dx, flip, x, b * size);
      } else {
        bytesToUnit(split.images, idx * size, x, b * size, size);
      }
    }
    yield { x, y, n, step, indices, shape: [h, w, c] };
  }
}

/** Test batches in file order, no augmentation, last partial batch kept. */
export function* testBatches(split: Split, batchSize: number): Generator<Batch> {
  checkBatchSize(batchSize);
  const [h, w, c] = split.shape;
  const size = h * w * c;
  const steps = stepsPerEpoch(split.n, batchSize);
  for (let step = 0; step < steps; step++) {
    const start = step * batchSize;
    const n = Math.min(batchSize, split.n - start);
    const x = new Float32Array(n * size);
    bytesToUnit(split.images, start * size, x, 0, n * size);
    const indices = new Int32Array(n);
    for (let b = 0; b < n; b++) indices[b] = start + b;
    yield { x, y: split.labels.slice(start, start + n), n, step, indices, shape: [h, w, c] };
  }
}
