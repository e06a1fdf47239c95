// SVHN, cropped-digits format (`train_32x32.mat`, `test_32x32.mat`, `extra_32x32.mat`):
// MAT-files with `X`, uint8 [32, 32, 3, N] in MATLAB's column-major order, and `y`, [N, 1]
// labels 1..10 where 10 is the digit 0. In memory: NHWC uint8 and labels 0..9, as CIFAR.
import * as path from 'path';
import { UserError } from '../errors';
import { assertFitsInMemory } from '../engine/safe-read';
import { readMatFile, type MatArray } from './mat';
import type { Split } from './types';

const SIDE = 32;
const PIXELS = SIDE * SIDE * 3;

export const SVHN_TRAIN_FILE = 'train_32x32.mat';
export const SVHN_TEST_FILE = 'test_32x32.mat';
export const SVHN_EXTRA_FILE = 'extra_32x32.mat';

/** Image counts of the official release. */
export const SVHN_OFFICIAL_COUNTS: Record<string, number> = {
  [SVHN_TRAIN_FILE]: 73257,
  [SVHN_TEST_FILE]: 26032,
  [SVHN_EXTRA_FILE]: 531131,
};

export const SVHN_HOWTO =
  'ibrar does not download SVHN: get train_32x32.mat and ' +
  'test_32x32.mat (and extra_32x32.mat for data.svhnExtra: true) from http://ufldl.stanford.edu/housenumbers/ ' +
  '("Format 2: Cropped Digits") and put them into <root>/svhn/';

function imageCount(x: MatArray, file: string): number {
  const d = x.dims;
  // MATLAB drops trailing singleton dimensions, so a one-image file is 32x32x3.
  const ok = d[0] === SIDE && d[1] === SIDE && d[2] === 3 && (d.length === 3 || d.length === 4);
  if (!ok) throw new UserError(`variable 'X' is ${d.join('x')}; SVHN images are 32x32x3xN`, file, `byte ${x.offset}`);
  return d.length === 3 ? 1 : d[3];
}

/** Copies column-major X(h, w, c, n) into NHWC `out` starting at image `first`. */
function transposeInto(x: MatArray, n: number, file: string, out: Uint8Array, first: number): void {
  const src = x.data;
  const needsCheck = !(src instanceof Uint8Array);
  for (let i = 0; i < n; i++) {
    const dst = (first + i) * PIXELS;
    for (let c = 0; c < 3; c++) {
      for (let w = 0; w < SIDE; w++) {
        let s = i * PIXELS + c * SIDE * SIDE + w * SIDE;
        for (let h = 0; h < SIDE; h++, s++) {
          const v = src[s];
          if (needsCheck && !(Number.isInteger(v) && v >= 0 && v <= 255)) {
            throw new UserError(`X value ${v} at (${h + 1}, ${w + 1}, ${c + 1}, ${i + 1}) is not a byte 0..255`, file, `byte ${x.offset}`);
          }
          out[dst + (h * SIDE + w) * 3 + c] = v;
        }
      }
    }
  }
}

/** Labels 1..10 (10 = digit 0) into 0..9 at `first`. */
function labelsInto(y: MatArray, n: number, file: string, out: Int32Array, first: number): void {
  const count = y.dims.reduce((a, b) => a * b, 1);
  if (count !== n || y.dims.filter((d) => d !== 1).length > 1) {
    throw new UserError(`variable 'y' is ${y.dims.join('x')}; expected ${n}x1 (one label per image in X)`, file, `byte ${y.offset}`);
  }
  for (let i = 0; i < n; i++) {
    const v = y.data[i];
    if (!Number.isInteger(v) || v < 1 || v > 10) {
      throw new UserError(`label ${i + 1} of 'y' is ${v}; SVHN labels are 1..10 (10 means the digit 0)`, file, `byte ${y.offset}`);
    }
    out[first + i] = v === 10 ? 0 : v;
  }
}

async function readXy(file: string): Promise<{ x: MatArray; y: MatArray; n: number }> {
  const vars = await readMatFile(file, { only: ['X', 'y'] });
  const x = vars.get('X');
  const y = vars.get('y');
  if (!x || !y) {
    throw new UserError(`no variable ${[x ? '' : "'X'", y ? '' : "'y'"].filter(Boolean).join(' or ')} in this MAT-file; SVHN files hold X and y`, file);
  }
  return { x, y, n: imageCount(x, file) };
}

/**
 * Reads SVHN MAT-files (in order) into one split. The last file (extra_32x32.mat when it is
 * used: 1.6 GB of pixels) is transposed straight into the final array, so its pixels are
 * never held three times.
 */
export async function readSvhnFiles(files: string[]): Promise<Split> {
  const parts: { images: Uint8Array; labels: Int32Array; n: number }[] = [];
  for (const file of files.slice(0, -1)) {
    const { x, y, n } = await readXy(file);
    assertFitsInMemory(n * PIXELS, `storing the ${n} images of 'X'`, file);
    const labels = new Int32Array(n);
    labelsInto(y, n, file, labels, 0);
    const images = new Uint8Array(n * PIXELS);
    transposeInto(x, n, file, images, 0);
    parts.push({ images, labels, n });
  }
  const lastFile = files[files.length - 1];
  const last = await readXy(lastFile);
  const first = parts.reduce((a, p) => a + p.n, 0);
  const n = first + last.n;
  assertFitsInMemory(n * PIXELS, `storing the ${n} images of ${files.map((f) => path.basename(f)).join(', ')}`, lastFile);
  const images = new Uint8Array(n * PIXELS);
  const labels = new Int32Array(n);
  let at = 0;
  for (const p of parts) {
    images.set(p.images, at * PIXELS);
    labels.set(p.labels, at);
    at += p.n;
  }
  labelsInto(last.y, last.n, lastFile, labels, first);
  transposeInto(last.x, last.n, lastFile, images, first);
  return { images, labels, n, shape: [SIDE, SIDE, 3] };
}

export function svhnDir(root: string): string {
  return path.join(root, 'svhn');
}
