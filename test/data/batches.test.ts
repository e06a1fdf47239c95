// Batching and augmentation: determinism from (seed, epoch), resume, crop/flip geometry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initBackend } from '../../src/engine/backend';
import { tf } from '../../src/engine/tf';
import { epochPlan, stepsPerEpoch, testBatches, toTensors, trainBatches } from '../../src/data';
import { cropFlipInto } from '../../src/data/augment';
import type { Batch, Split } from '../../src/data/types';
import { makeImages, pixel } from './helpers';

/** A byte as the float32 the batches hold. */
const u = (v: number) => Math.fround(v / 255);

function makeSplit(n: number, h: number, w: number, c: number): Split {
  return { images: makeImages(n, h, w, c), labels: Int32Array.from({ length: n }, (_, i) => (i * 3) % 5), n, shape: [h, w, c] };
}

/** torchvision semantics spelled out: zero-pad by p, crop at (i, j), then maybe mirror. */
function referenceCropFlip(src: Uint8Array, h: number, w: number, c: number, p: number, i: number, j: number, flip: boolean): Float32Array {
  const H = h + 2 * p;
  const W = w + 2 * p;
  const padded = new Float32Array(H * W * c);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let k = 0; k < c; k++) padded[((y + p) * W + x + p) * c + k] = src[(y * w + x) * c + k] / 255;
  const out = new Float32Array(h * w * c);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const xc = flip ? w - 1 - x : x;
      for (let k = 0; k < c; k++) out[(y * w + x) * c + k] = padded[((y + i) * W + xc + j) * c + k];
    }
  return out;
}

function collect(gen: Generator<Batch>): Batch[] {
  return Array.from(gen);
}

test('no shuffle, no augmentation: pixels / 255 in file order; the last partial batch is kept', () => {
  const split = makeSplit(10, 3, 4, 2);
  const batches = collect(trainBatches(split, { batchSize: 4, seed: 0, epoch: 0, shuffle: false }));
  assert.deepEqual(batches.map((b) => b.n), [4, 4, 2]);
  assert.deepEqual(batches.map((b) => b.step), [0, 1, 2]);
  assert.equal(stepsPerEpoch(10, 4), 3);
  const b = batches[2];
  assert.deepEqual(Array.from(b.indices), [8, 9]);
  assert.deepEqual(Array.from(b.y), [(8 * 3) % 5, (9 * 3) % 5]);
  assert.equal(b.x[(1 * 3 * 4 + 2 * 4 + 3) * 2 + 1], u(pixel(9, 2, 3, 1)));
  assert.deepEqual(b.shape, [3, 4, 2]);
  const t = collect(testBatches(split, 3));
  assert.deepEqual(t.map((x) => x.n), [3, 3, 3, 1]);
  assert.deepEqual(Array.from(t[3].indices), [9]);
  assert.equal(t[1].x[0], u(pixel(3, 0, 0, 0)));
});

test('shuffle: a permutation per epoch, fixed by (seed, epoch), different across epochs and seeds', () => {
  const split = makeSplit(50, 2, 2, 1);
  const order = (seed: number, epoch: number) =>
    collect(trainBatches(split, { batchSize: 7, seed, epoch })).flatMap((b) => Array.from(b.indices));
  const e0 = order(1, 0);
  assert.deepEqual([...e0].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i));
  assert.deepEqual(order(1, 0), e0);
  assert.notDeepEqual(order(1, 1), e0);
  assert.notDeepEqual(order(2, 0), e0);
  // Labels travel with their images.
  for (const b of collect(trainBatches(split, { batchSize: 7, seed: 1, epoch: 0 })))
    b.indices.forEach((idx, k) => {
      assert.equal(b.y[k], split.labels[idx]);
      assert.equal(b.x[k * 4 + 3], u(split.images[idx * 4 + 3]));
    });
});

test('resume: startStep k yields exactly the batches k.. of the uninterrupted epoch', () => {
  const split = makeSplit(23, 8, 8, 3);
  const augment = { cropPadding: 4, horizontalFlip: true };
  const full = collect(trainBatches(split, { batchSize: 5, seed: 9, epoch: 3, augment }));
  const resumed = collect(trainBatches(split, { batchSize: 5, seed: 9, epoch: 3, augment, startStep: 2 }));
  assert.equal(resumed.length, 3);
  resumed.forEach((b, k) => {
    const f = full[k + 2];
    assert.equal(b.step, f.step);
    assert.deepEqual(b.indices, f.indices);
    assert.deepEqual(b.y, f.y);
    assert.deepEqual(b.x, f.x);
  });
  assert.deepEqual(collect(trainBatches(split, { batchSize: 5, seed: 9, epoch: 3, augment, startStep: 5 })), []);
  assert.throws(() => collect(trainBatches(split, { batchSize: 5, seed: 9, epoch: 3, startStep: 6 })), /startStep/);
});

test('crop with padding and flip: every offset matches torchvision-style pad → crop → mirror', () => {
  const [h, w, c, p] = [5, 6, 2, 4];
  const img = makeImages(1, h, w, c, 3);
  for (let i = 0; i <= 2 * p; i++)
    for (let j = 0; j <= 2 * p; j++)
      for (const flip of [false, true]) {
        const out = new Float32Array(h * w * c);
        cropFlipInto(img, 0, h, w, c, i - p, j - p, flip, out, 0);
        assert.deepEqual(out, referenceCropFlip(img, h, w, c, p, i, j, flip), `i=${i} j=${j} flip=${flip}`);
      }
  // Hand-checked: crop origin (i, j) = (1, 7) → shift dy = -3, dx = +3.
  const out = new Float32Array(h * w * c);
  cropFlipInto(img, 0, h, w, c, -3, 3, false, out, 0);
  assert.equal(out[(3 * w + 0) * c + 1], u(pixel(3, 0, 3, 1))); // out(3,0) = src(0,3)
  assert.equal(out[(4 * w + 2) * c + 0], u(pixel(3, 1, 5, 0))); // out(4,2) = src(1,5)
  assert.equal(out[(2 * w + 0) * c], 0); // above the image: zero padding
  assert.equal(out[(4 * w + 3) * c], 0); // right of the image
  cropFlipInto(img, 0, h, w, c, 0, 0, true, out.fill(0), 0);
  assert.equal(out[(1 * w + 0) * c + 1], u(pixel(3, 1, w - 1, 1))); // pure mirror
});

test('augmentation draws: crop offsets cover 0..2p uniformly, flips ≈ 1/2, per (seed, epoch)', () => {
  const n = 9000;
  const plan = epochPlan(n, 5, 0, true, { cropPadding: 4, horizontalFlip: true });
  const hist = new Array(9).fill(0);
  for (let k = 0; k < n; k++) {
    hist[plan.dy![k] + 4]++;
    hist[plan.dx![k] + 4]++;
  }
  for (const v of hist) assert.ok(Math.abs(v - 2000) < 200, `offset histogram ${hist}`);
  const flips = plan.flip!.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(flips - n / 2) < 300, `flips ${flips}`);
  const again = epochPlan(n, 5, 0, true, { cropPadding: 4, horizontalFlip: true });
  assert.deepEqual(again.dy, plan.dy);
  assert.deepEqual(again.flip, plan.flip);
  assert.notDeepEqual(epochPlan(n, 5, 1, true, { cropPadding: 4, horizontalFlip: true }).dy, plan.dy);
  // Turning augmentation on does not change the shuffle.
  assert.deepEqual(epochPlan(n, 5, 0, true, null).order, plan.order);
  const none = epochPlan(n, 5, 0, true, { cropPadding: 0, horizontalFlip: false });
  assert.equal(none.dy, null);
  assert.equal(none.flip, null);
});

test('augmented batches apply the planned crop/flip to the planned images', () => {
  const split = makeSplit(12, 6, 6, 3);
  const augment = { cropPadding: 2, horizontalFlip: true };
  const plan = epochPlan(12, 11, 2, true, augment);
  let pos = 0;
  for (const b of trainBatches(split, { batchSize: 5, seed: 11, epoch: 2, augment })) {
    for (let k = 0; k < b.n; k++, pos++) {
      const idx = plan.order[pos];
      assert.equal(b.indices[k], idx);
      const ref = referenceCropFlip(split.images.subarray(idx * 108, (idx + 1) * 108), 6, 6, 3, 2, plan.dy![pos] + 2, plan.dx![pos] + 2, plan.flip![pos] === 1);
      assert.deepEqual(b.x.subarray(k * 108, (k + 1) * 108), ref);
    }
  }
  assert.equal(pos, 12);
});

test('toTensors: NHWC float32 x, int32 y, float32 one-hot; nothing leaks', async () => {
  await initBackend('cpu');
  const split = makeSplit(7, 2, 3, 2);
  const [batch] = collect(testBatches(split, 7));
  const before = tf.memory().numTensors;
  const t = toTensors(batch, 5);
  assert.deepEqual(t.x.shape, [7, 2, 3, 2]);
  assert.equal(t.x.dtype, 'float32');
  assert.equal(t.y.dtype, 'int32');
  assert.deepEqual(t.yOneHot.shape, [7, 5]);
  assert.equal(t.yOneHot.dtype, 'float32');
  assert.deepEqual(Array.from(t.y.dataSync()), Array.from(split.labels));
  const oh = t.yOneHot.arraySync();
  oh.forEach((row, i) => assert.deepEqual(row, [0, 1, 2, 3, 4].map((k) => (k === split.labels[i] ? 1 : 0))));
  assert.ok(Math.abs(t.x.dataSync()[13] - u(pixel(1, 0, 0, 1))) < 1e-7);
  tf.dispose([t.x, t.y, t.yOneHot]);
  assert.equal(tf.memory().numTensors, before);
  assert.throws(() => toTensors(batch, 3), /outside 0\.\.2/);
  assert.equal(tf.memory().numTensors, before);
  const z = toTensors(batch, 0);
  assert.deepEqual(z.yOneHot.shape, [7, 0]);
  tf.dispose([z.x, z.y, z.yOneHot]);
  assert.equal(tf.memory().numTensors, before);
});
