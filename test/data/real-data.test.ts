// The real datasets in $IBRAR_DATA, when it holds them: counts, per-class counts and pixel
// means of the official files, and the checksum report. Absent → diagnostic only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { loadDataset, verifyDataset } from '../../src/data';
import { countPerClass } from '../../src/data/subset';
import { CIFAR10_CLASSES } from '../../src/data/class-names';
import type { Split } from '../../src/data/types';
import { dataCfg, sharedDataRoot } from './helpers';

const ROOT = sharedDataRoot();

function present(sub: string, t: { diagnostic(msg: string): void }): boolean {
  if (ROOT && fs.existsSync(path.join(ROOT, sub))) return true;
  t.diagnostic(`${path.join(ROOT, sub)} not found: real-data checks not run`);
  return false;
}

function channelMeans(s: Split): number[] {
  const c = s.shape[2];
  const sums = new Array<number>(c).fill(0);
  for (let i = 0; i < s.images.length; i++) sums[i % c] += s.images[i];
  return sums.map((v) => v / (s.images.length / c) / 255);
}

test('real CIFAR-10: 50,000 + 10,000 images, README per-class counts, labels and pixel means', async (t) => {
  if (!present('cifar10', t)) return;
  const ds = await loadDataset(dataCfg({ dataset: 'cifar10', root: ROOT }), 0);
  assert.equal(ds.train.n, 50000);
  assert.equal(ds.test.n, 10000);
  assert.deepEqual(ds.classNames, CIFAR10_CLASSES); // from batches.meta.txt
  assert.deepEqual(countPerClass(ds.train.labels, 10), new Array(10).fill(5000));
  assert.deepEqual(countPerClass(ds.test.labels, 10), new Array(10).fill(1000));
  assert.deepEqual(countPerClass(ds.train.labels.subarray(0, 10000), 10), [1005, 974, 1032, 1016, 999, 937, 1030, 1001, 1025, 981]);
  assert.deepEqual(countPerClass(ds.train.labels.subarray(40000), 10), [1014, 1014, 952, 1016, 997, 1025, 980, 977, 1003, 1022]);
  assert.deepEqual(Array.from(ds.test.labels.subarray(0, 10)), [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]);
  assert.deepEqual(Array.from(ds.train.labels.subarray(0, 10)), [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]);
  const testMean = channelMeans(ds.test);
  [0.4942, 0.4851, 0.4504].forEach((m, c) => assert.ok(Math.abs(testMean[c] - m) < 5e-5, `test mean ${testMean}`));
  const trainMean = channelMeans(ds.train);
  [0.4914, 0.4822, 0.4465].forEach((m, c) => assert.ok(Math.abs(trainMean[c] - m) < 5e-5, `train mean ${trainMean}`));
});

test('real MNIST test set: 10,000 digits, README per-class counts; splitFromTest carves a training split', async (t) => {
  if (!present('mnist', t)) return;
  const ds = await loadDataset(dataCfg({ dataset: 'mnist', root: ROOT, splitFromTest: 1000 }), 0);
  assert.equal(ds.train.n, 9000);
  assert.equal(ds.test.n, 1000);
  assert.deepEqual(ds.shape, [28, 28, 1]);
  const all = new Int32Array([...ds.train.labels, ...ds.test.labels]);
  assert.deepEqual(countPerClass(all, 10), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  assert.deepEqual(Array.from(ds.train.labels.subarray(0, 10)), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  assert.deepEqual(countPerClass(ds.test.labels, 10), [102, 119, 99, 102, 92, 85, 102, 115, 94, 90]);
  const r = await verifyDataset('mnist', ROOT);
  const testSplit = r.splits.find((s) => s.name === 'test');
  assert.deepEqual(testSplit?.perClass, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
  assert.deepEqual(r.files.map((f) => [f.file, f.status]), [
    ['t10k-images-idx3-ubyte.gz', 'official'],
    ['t10k-labels-idx1-ubyte.gz', 'official'],
  ]);
  // A test-only official copy is complete and verified (training uses data.splitFromTest):
  // a note, not a problem, so `data verify` exits 0 on it.
  assert.equal(r.ok, true, r.problems.join('; '));
  assert.ok(r.notes.some((n) => n.includes('no official training files') && n.includes('data.splitFromTest')));
});

test('real Fashion-MNIST test set: recompressed .gz verified through the decompressed hash', async (t) => {
  if (!present('fashion-mnist', t)) return;
  const r = await verifyDataset('fashion-mnist', ROOT);
  const testSplit = r.splits.find((s) => s.name === 'test');
  assert.equal(testSplit?.n, 10000);
  assert.deepEqual(testSplit?.perClass, new Array(10).fill(1000));
  for (const f of r.files) {
    assert.equal(f.status, 'official', f.file);
    assert.match(f.note ?? '', /decompressed content is identical/);
  }
  assert.equal(r.files[0].sha256Decompressed, '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b');
  const ds = await loadDataset(dataCfg({ dataset: 'fashion-mnist', root: ROOT, splitFromTest: 2000, testSubset: { n: 100, mode: 'random' } }), 1);
  assert.deepEqual(Array.from(ds.train.labels.subarray(0, 10)), [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]);
  assert.deepEqual(countPerClass(ds.test.labels, 10), new Array(10).fill(10));
});

test('real CIFAR-10 verify report: official SHA-256 for all six batches', async (t) => {
  if (!present('cifar10', t)) return;
  const r = await verifyDataset('cifar10', ROOT);
  assert.equal(r.ok, true, r.problems.join('; '));
  assert.deepEqual(
    r.files.map((f) => [f.file, f.status]),
    [
      ...[1, 2, 3, 4, 5].map((i) => [`data_batch_${i}.bin`, 'official']),
      ['test_batch.bin', 'official'],
      ['batches.meta.txt', 'derived'],
    ],
  );
  assert.deepEqual(r.splits.map((s) => [s.name, s.n, s.shape.join('x')]), [['train', 50000, '32x32x3'], ['test', 10000, '32x32x3']]);
  assert.deepEqual(r.splits[0].perClass, new Array(10).fill(5000));
});
