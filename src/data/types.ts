// Shapes of the in-memory datasets. Images stay as NHWC uint8 until a batch is made, so a
// CIFAR-10 training set costs 150 MB rather than 600 MB of float32.

/** [height, width, channels] of one image. */
export type ImageShape = [number, number, number];

/** The datasets `ibrar` knows (same list as the config schema). */
export type DatasetName = 'cifar10' | 'cifar100' | 'mnist' | 'fashion-mnist' | 'svhn' | 'tiny-imagenet' | 'synthetic';

/** Datasets `fetchDataset` can download or rebuild. */
export type FetchableDataset = 'cifar10' | 'mnist' | 'fashion-mnist';

export interface Split {
  /** NHWC, length n·h·w·c, values 0..255. */
  images: Uint8Array;
  /** One class index per image, 0..numClasses-1. */
  labels: Int32Array;
  n: number;
  /** [h, w, c] of each image (needed for cropping and for building tensors). */
  shape: ImageShape;
}

export interface Dataset {
  name: DatasetName;
  numClasses: number;
  classNames: string[];
  shape: ImageShape;
  train: Split;
  test: Split;
  /** Folder holding the `<dataset>/` subfolders ('' for synthetic data). */
  root: string;
  /** Where the splits came from, in words (files, split rule, subsets); for run logs. */
  source: string[];
}

/** One training or test batch: pixels scaled to [0,1], NHWC. */
export interface Batch {
  x: Float32Array;
  y: Int32Array;
  n: number;
  /** Index of this batch inside its epoch (0-based). */
  step: number;
  /** Positions in the split of the images in this batch (after shuffling). */
  indices: Int32Array;
  shape: ImageShape;
}

export interface AugmentOptions {
  /** Random crop to the original size after zero-padding each side by this much; 0 = off. */
  cropPadding: number;
  /** Mirror left-right with probability 0.5. */
  horizontalFlip: boolean;
}

/** Progress of a long data operation: `done` of `total` units in `phase`. */
export type ProgressFn = (done: number, total: number, phase: string) => void;
