// Subsets (first / seeded class-balanced random) and the synthetic dataset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng';
import { loadDataset } from '../../src/data';
import { balancedQuotas, countPerClass, takeSubset } from '../../src/data/subset';
import { makeSynthetic } from '../../src/data/synthetic';
import type { Split } from '../../src/data/types';
import { dataCfg, rejectsUserError, throwsUserError } from './helpers';

/** 1x1x1 images whose pixel is the image index, labels from `labels`. */
function splitOf(labels: number[]): Split {
  return {
    images: Uint8Array.from(labels.map((_, i) => i)),
    labels: Int32Array.from(labels),
    n: labels.length,
    shape: [1, 1, 1],
  };
}

// 4 classes with 9, 3, 7, 1 images, interleaved.
const LABELS = [0, 0, 1, 0, 2, 0, 2, 3, 0, 1, 2, 0, 2, 0, 2, 0, 1, 2, 0, 2];

test('balancedQuotas: equal shares, remainder to random classes, shortfall water-filled', () => {
  const rng = new Rng(1);
  assert.deepEqual(balancedQuotas([10, 10, 10, 10], 8, rng), [2, 2, 2, 2]);
  const q = balancedQuotas([10, 10, 10, 10], 10, new Rng(2));
  assert.equal(q.reduce((a, b) => a + b, 0), 10);
  assert.deepEqual([...q].sort(), [2, 2, 3, 3]);
  // class 3 has 1 image, class 1 has 3: the rest is shared by classes 0 and 2.
  assert.deepEqual(balancedQuotas([10, 3, 8, 1], 16, new Rng(3)), [6, 3, 6, 1]);
  assert.deepEqual(balancedQuotas([10, 3, 8, 1], 22, new Rng(3)), [10, 3, 8, 1]);
});

test('takeSubset random: class-balanced, in file order, deterministic from the rng seed', () => {
  const split = splitOf(LABELS);
  assert.deepEqual(countPerClass(split.labels, 4), [9, 3, 7, 1]);
  const a = takeSubset(split, { n: 8, mode: 'random' }, 4, new Rng(7), 'x');
  // 2 each, but class 3 has one image: its shortfall goes to one of the other classes.
  const ca = countPerClass(a.labels, 4);
  assert.equal(ca[3], 1);
  assert.deepEqual([ca[0], ca[1], ca[2]].sort(), [2, 2, 3]);
  const idx = Array.from(a.images); // pixel = original index
  assert.deepEqual(idx, [...idx].sort((p, q) => p - q));
  idx.forEach((i, k) => assert.equal(a.labels[k], LABELS[i]));
  const b = takeSubset(split, { n: 8, mode: 'random' }, 4, new Rng(7), 'x');
  assert.deepEqual(Array.from(b.images), idx);
  const seeds = new Set<string>();
  for (let s = 0; s < 10; s++) seeds.add(Array.from(takeSubset(split, { n: 8, mode: 'random' }, 4, new Rng(s), 'x').images).join(','));
  assert.ok(seeds.size > 5, 'different seeds pick different images');
  // 13 = 1 (all of class 3) + 3 (all of class 1) + 9 shared by classes 0 and 2 as 5/4.
  const cc = countPerClass(takeSubset(split, { n: 13, mode: 'random' }, 4, new Rng(9), 'x').labels, 4);
  assert.deepEqual([cc[1], cc[3]], [3, 1]);
  assert.deepEqual([cc[0], cc[2]].sort(), [4, 5]);
});

test('takeSubset first: the first n in file order; too large n is a UserError', () => {
  const split = splitOf(LABELS);
  const f = takeSubset(split, { n: 5, mode: 'first' }, 4, new Rng(0), 'x');
  assert.deepEqual(Array.from(f.labels), LABELS.slice(0, 5));
  throwsUserError(() => takeSubset(split, { n: 21, mode: 'first' }, 4, new Rng(0), 'data.trainSubset'), ['data.trainSubset.n is 21', 'only 20']);
});

test('synthetic: seeded, shapes from config, balanced labels, separable by nearest prototype', async () => {
  const spec = { height: 6, width: 5, channels: 2, classes: 3, trainSize: 30, testSize: 12, noise: 0.15 };
  const a = makeSynthetic(spec, 4);
  const b = makeSynthetic(spec, 4);
  const c = makeSynthetic(spec, 5);
  assert.deepEqual(a.train.images, b.train.images);
  assert.notDeepEqual(a.train.images, c.train.images);
  assert.deepEqual(a.train.shape, [6, 5, 2]);
  assert.equal(a.test.images.length, 12 * 60);
  assert.deepEqual(countPerClass(a.train.labels, 3), [10, 10, 10]);
  assert.notDeepEqual(a.train.images.subarray(0, 60), a.test.images.subarray(0, 60));
  // Class means of the training set classify every test image correctly.
  const size = 60;
  const means = Array.from({ length: 3 }, () => new Float64Array(size));
  for (let i = 0; i < 30; i++) for (let p = 0; p < size; p++) means[a.train.labels[i]][p] += a.train.images[i * size + p] / 10;
  for (let i = 0; i < 12; i++) {
    const d = means.map((m) => m.reduce((s, v, p) => s + (v - a.test.images[i * size + p]) ** 2, 0));
    assert.equal(d.indexOf(Math.min(...d)), a.test.labels[i]);
  }
  // noise 0: every image of a class is the same quantised prototype.
  const z = makeSynthetic({ ...spec, noise: 0 }, 4);
  assert.deepEqual(z.train.images.subarray(0, size), z.train.images.subarray(3 * size, 4 * size));
  assert.deepEqual(z.train.images.subarray(0, size), z.test.images.subarray(0, size));
});

test('loadDataset synthetic + subsets + splitFromTest; subsets are seeded by the experiment seed', async () => {
  const cfg = dataCfg({
    dataset: 'synthetic',
    synthetic: { height: 4, width: 4, channels: 3, classes: 4, trainSize: 40, testSize: 20, noise: 0.1 },
    trainSubset: { n: 12, mode: 'random' },
    testSubset: { n: 6, mode: 'first' },
  });
  const a = await loadDataset(cfg, 3);
  assert.equal(a.numClasses, 4);
  assert.deepEqual(a.classNames, ['class_0', 'class_1', 'class_2', 'class_3']);
  assert.deepEqual(a.shape, [4, 4, 3]);
  assert.deepEqual(countPerClass(a.train.labels, 4), [3, 3, 3, 3]);
  assert.deepEqual(Array.from(a.test.labels), [0, 1, 2, 3, 0, 1]);
  const b = await loadDataset(cfg, 3);
  assert.deepEqual(a.train.images, b.train.images);
  const s = await loadDataset(dataCfg({ dataset: 'synthetic', splitFromTest: 5 }), 0);
  assert.equal(s.train.n, 251);
  assert.equal(s.test.n, 5);
  await rejectsUserError(loadDataset({ ...cfg, trainSubset: { n: 41, mode: 'first' } }, 0), ['data.trainSubset.n is 41']);
});
