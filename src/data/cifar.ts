// CIFAR-10 / CIFAR-100 "binary version" readers. A record is the label byte(s) followed by
// 3072 pixel bytes: the 1024 red values, then green, then blue, each 32x32 row-major plane.
// We keep NHWC in memory, so every record is transposed from planes to interleaved pixels.
import * as path from 'path';
import { UserError } from '../errors';
import { assertFitsInMemory, statRegularFile } from '../engine/safe-read';
import { exists, readFileOrThrow } from './files';
import type { Split } from './types';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const PIXELS = 3 * PLANE;

export interface CifarFormat {
  /** Label bytes before the pixels: 1 (CIFAR-10) or 2 (CIFAR-100: coarse, fine). */
  labelBytes: 1 | 2;
  /** Which label byte is the class we train on. */
  labelIndex: number;
  /** Class count for that label (10 or 100). */
  numClasses: number;
  /** Range check for the other label byte (CIFAR-100 coarse: 20), if any. */
  otherLabelClasses?: number;
}

export const CIFAR10_FORMAT: CifarFormat = { labelBytes: 1, labelIndex: 0, numClasses: 10 };
export const CIFAR100_FORMAT: CifarFormat = {
  labelBytes: 2,
  labelIndex: 1,
  numClasses: 100,
  otherLabelClasses: 20,
};

export function cifarRecordBytes(fmt: CifarFormat): number {
  return fmt.labelBytes + PIXELS;
}

/** Validates the size of a CIFAR binary file and returns its record count. */
export function cifarRecordCount(byteLength: number, fmt: CifarFormat, file: string): number {
  const rec = cifarRecordBytes(fmt);
  if (byteLength === 0 || byteLength % rec !== 0) {
    throw new UserError(
      `expected a whole number of ${rec}-byte records (label byte${fmt.labelBytes > 1 ? 's' : ''} + 3072 pixels), found ${byteLength} bytes` +
        (byteLength % rec !== 0 ? ` (${byteLength % rec} bytes left over after ${Math.floor(byteLength / rec)} records)` : ''),
      file,
    );
  }
  return byteLength / rec;
}

/**
 * Decodes records from `buf` into `images`/`labels` starting at image `offset`.
 * Checks every label before touching the output, so a bad file leaves nothing half-copied
 * that a caller could mistake for data.
 */
export function decodeCifarRecords(
  buf: Uint8Array,
  fmt: CifarFormat,
  file: string,
  images: Uint8Array,
  labels: Int32Array,
  offset: number,
): number {
  const n = cifarRecordCount(buf.length, fmt, file);
  const rec = cifarRecordBytes(fmt);
  for (let i = 0; i < n; i++) {
    const base = i * rec;
    for (let b = 0; b < fmt.labelBytes; b++) {
      const v = buf[base + b];
      const limit = b === fmt.labelIndex ? fmt.numClasses : fmt.otherLabelClasses ?? 256;
      if (v >= limit) {
        const what = fmt.labelBytes === 1 ? 'label' : b === 0 ? 'coarse label' : 'fine label';
        throw new UserError(
          `${what} of record ${i} is ${v}; expected 0..${limit - 1}`,
          file,
          `byte ${base + b}`,
        );
      }
    }
  }
  for (let i = 0; i < n; i++) {
    const src = i * rec + fmt.labelBytes;
    const dst = (offset + i) * PIXELS;
    labels[offset + i] = buf[i * rec + fmt.labelIndex];
    for (let p = 0; p < PLANE; p++) {
      const o = dst + 3 * p;
      images[o] = buf[src + p];
      images[o + 1] = buf[src + PLANE + p];
      images[o + 2] = buf[src + 2 * PLANE + p];
    }
  }
  return n;
}

/**
 * Reads and concatenates CIFAR binary files (in the given order) into one split. The record
 * counts come from the files' sizes, so what the split needs is known (and refused when it
 * cannot fit) before a byte is read; then one file at a time is read and decoded.
 */
export async function readCifarFiles(files: string[], fmt: CifarFormat): Promise<Split> {
  const sizes: number[] = [];
  let n = 0;
  for (const f of files) {
    const st = statRegularFile(f, 'dataset file');
    if (!st) throw new UserError('file not found', f);
    n += cifarRecordCount(st.size, fmt, f);
    sizes.push(st.size);
  }
  assertFitsInMemory(n * PIXELS, `storing the ${n} images of ${files.map((f) => path.basename(f)).join(', ')}`, files[files.length - 1]);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let offset = 0;
  for (let i = 0; i < files.length; i++) {
    // Bounded by the size counted above: a file that changed since is refused.
    const buf = await readFileOrThrow(files[i], sizes[i]);
    if (buf.length !== sizes[i]) throw new UserError(`file changed while being read (${sizes[i]} bytes, then ${buf.length})`, files[i]);
    offset += decodeCifarRecords(buf, fmt, files[i], images, labels, offset);
  }
  return { images, labels, n, shape: [SIDE, SIDE, 3] };
}

/** Encodes NHWC 32x32x3 images back into CIFAR records (used by the fetcher and tests). */
export function encodeCifarRecords(
  images: Uint8Array,
  labels: ArrayLike<number>,
  fmt: CifarFormat = CIFAR10_FORMAT,
  otherLabels?: ArrayLike<number>,
): Uint8Array {
  const n = labels.length;
  const rec = cifarRecordBytes(fmt);
  const out = new Uint8Array(n * rec);
  for (let i = 0; i < n; i++) {
    const base = i * rec;
    for (let b = 0; b < fmt.labelBytes; b++) {
      out[base + b] = b === fmt.labelIndex ? labels[i] : otherLabels ? otherLabels[i] : 0;
    }
    const src = i * PIXELS;
    const dst = base + fmt.labelBytes;
    for (let p = 0; p < PLANE; p++) {
      out[dst + p] = images[src + 3 * p];
      out[dst + PLANE + p] = images[src + 3 * p + 1];
      out[dst + 2 * PLANE + p] = images[src + 3 * p + 2];
    }
  }
  return out;
}

export const CIFAR10_TRAIN_FILES = [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`);
export const CIFAR10_TEST_FILES = ['test_batch.bin'];
export const CIFAR100_TRAIN_FILES = ['train.bin'];
export const CIFAR100_TEST_FILES = ['test.bin'];

/**
 * The folder holding a CIFAR release: `<root>/<name>/`, or the folder the official tarball
 * unpacks to (`cifar-10-batches-bin`, `cifar-100-binary`) directly under `<root>` or inside
 * `<root>/<name>/`. Returns the first candidate that has the first required file.
 */
export async function findCifarDir(
  root: string,
  name: 'cifar10' | 'cifar100',
  probeFile: string,
): Promise<{ dir: string; candidates: string[] }> {
  const official = name === 'cifar10' ? 'cifar-10-batches-bin' : 'cifar-100-binary';
  const candidates = [
    path.join(root, name),
    path.join(root, name, official),
    path.join(root, official),
  ];
  for (const c of candidates) {
    if (await exists(path.join(c, probeFile))) return { dir: c, candidates };
  }
  return { dir: candidates[0], candidates };
}
