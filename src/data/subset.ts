// Cutting splits: contiguous slices (splitFromTest), index gathers, and the `first` /
// seeded class-balanced `random` subsets of the config.
import { UserError } from '../errors';
import type { Rng } from '../engine/rng';
import type { Split } from './types';

function imageSize(split: Split): number {
  return split.shape[0] * split.shape[1] * split.shape[2];
}

/** Images [start, end) as a new split (copied, so the parent buffer can be freed). */
export function sliceSplit(split: Split, start: number, end: number): Split {
  const sz = imageSize(split);
  return {
    images: split.images.slice(start * sz, end * sz),
    labels: split.labels.slice(start, end),
    n: end - start,
    shape: [...split.shape],
  };
}

/** The images at `indices`, in that order. */
export function gatherSplit(split: Split, indices: ArrayLike<number>): Split {
  const sz = imageSize(split);
  const n = indices.length;
  const images = new Uint8Array(n * sz);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    images.set(split.images.subarray(j * sz, (j + 1) * sz), i * sz);
    labels[i] = split.labels[j];
  }
  return { images, labels, n, shape: [...split.shape] };
}

export function countPerClass(labels: Int32Array, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++;
  return counts;
}

/**
 * `data.splitFromTest`: the last `holdout` images stay the test set and the rest become the
 * training set, so the test images are the same ones whatever the holdout size leaves over.
 */
export function splitFromTest(pool: Split, holdout: number, what: string): { train: Split; test: Split } {
  if (holdout >= pool.n) {
    throw new UserError(
      `data.splitFromTest is ${holdout}, but ${what} has only ${pool.n} images; it must be below ${pool.n} to leave training images`,
    );
  }
  return { train: sliceSplit(pool, 0, pool.n - holdout), test: sliceSplit(pool, pool.n - holdout, pool.n) };
}

/**
 * Per-class quotas for a class-balanced subset of size n: as equal as possible, extra units
 * going to randomly chosen classes, and a class with too few images handing its shortfall on
 * to the others (water-filling).
 */
export function balancedQuotas(available: number[], n: number, rng: Rng): number[] {
  const k = available.length;
  const quota = new Array<number>(k).fill(0);
  let remaining = n;
  // Classes in a seeded order, so remainders land on random classes rather than class 0..r-1.
  const order = Array.from(rng.permutation(k));
  while (remaining > 0) {
    const open = order.filter((c) => quota[c] < available[c]);
    if (open.length === 0) break;
    const share = Math.floor(remaining / open.length);
    if (share === 0) {
      for (let i = 0; i < remaining; i++) quota[open[i]]++;
      remaining = 0;
      break;
    }
    for (const c of open) {
      const add = Math.min(share, available[c] - quota[c]);
      quota[c] += add;
      remaining -= add;
    }
  }
  return quota;
}

export interface SubsetSpec {
  n: number;
  mode: 'first' | 'random';
}

/**
 * `first`: the first n images in file order. `random`: n images drawn class-balanced with
 * `rng`, returned in file order (training shuffles anyway; file order keeps subsets of
 * subsets easy to reason about).
 */
export function takeSubset(split: Split, spec: SubsetSpec, numClasses: number, rng: Rng, what: string): Split {
  if (spec.n > split.n) {
    throw new UserError(`${what}.n is ${spec.n}, but the split has only ${split.n} images`);
  }
  if (spec.mode === 'first') return sliceSplit(split, 0, spec.n);
  const byClass: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < split.n; i++) byClass[split.labels[i]].push(i);
  const quota = balancedQuotas(byClass.map((c) => c.length), spec.n, rng);
  const chosen: number[] = [];
  for (let c = 0; c < numClasses; c++) {
    const members = Int32Array.from(byClass[c]);
    rng.shuffle(members);
    for (let i = 0; i < quota[c]; i++) chosen.push(members[i]);
  }
  chosen.sort((a, b) => a - b);
  return gatherSplit(split, chosen);
}
