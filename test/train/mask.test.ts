// The channel mask (Eq. 3) inside training: computed on mask batches, stored with the
// checkpoint, and applied at evaluation when `applyAtEval`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { train, evaluateClean } from '../../src/jobs/train';
import { loadCheckpoint } from '../../src/runs/checkpoint';
import { constantMaskHook } from '../../src/ib/hooks';
import { buildModel } from '../../src/models/registry';
import { loadDataset, testBatches, toTensors } from '../../src/data';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig } from '../helpers/configs';

test('paper-rule mask: exactly ⌊drop·C⌋ channels zeroed, stored in the checkpoint, applied at eval', async () => {
  const cfg = tinyConfig({
    train: { epochs: 2 },
    ib: { enabled: true, layers: ['fc1'], alpha: 0.01, beta: 0.1, mask: { enabled: true, rule: 'paper', drop: 0.25, every: 1, applyAtEval: true } },
  });
  const res = await train({ cfg });
  const ds = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(0));
  const { sidecar } = loadCheckpoint(runLayout(res.runDir).checkpoints, 'last', model);
  const mask = sidecar.mask!;
  const C = 32; // small-cnn conv3 at width 0.25
  assert.equal(mask.length, C);
  assert.deepEqual(mask, res.lastMask, 'the checkpoint holds the last mask computed in training');
  const dropped = mask.flatMap((v, c) => (v === 0 ? [c] : []));
  assert.equal(dropped.length, Math.floor(0.25 * C));
  assert.ok(mask.every((v) => v === 0 || v === 1));

  const hook = constantMaskHook(Float32Array.from(mask));
  const batch = testBatches(ds.test, 64).next().value!;
  tf.tidy(() => {
    const { x } = toTensors(batch, ds.numClasses);
    const masked = model.forward(x, { training: false, channelMask: hook }).taps.conv3.arraySync() as number[][];
    const plain = model.forward(x, { training: false }).taps.conv3.arraySync() as number[][];
    for (let i = 0; i < masked.length; i++) {
      for (let c = 0; c < C; c++) {
        if (mask[c] === 0) assert.equal(masked[i][c], 0, `example ${i} channel ${c} is zeroed`);
        else assert.equal(masked[i][c], plain[i][c], `example ${i} channel ${c} is untouched`);
      }
    }
    assert.ok(dropped.some((c) => plain.some((row) => row[c] !== 0)), 'the dropped channels were active without the mask');
  });
  // The recorded test accuracy was measured with the mask, as training evaluates.
  const acc = await evaluateClean(model, ds.test, 128, Float32Array.from(mask));
  assert.equal(acc, res.records[1].test_acc);
  model.dispose();
});

test('code-rule mask with every: 3 is only computed on batches 3, 6, … (skipFirstBatch)', async () => {
  const seen: number[] = [];
  const cfg = tinyConfig({
    train: { epochs: 1 },
    ib: { enabled: false, mask: { enabled: true, rule: 'code', lowY: 2, highX: 2, every: 3, skipFirstBatch: true, skipLastChannel: true, applyAtEval: false } },
  });
  const { maskDue } = await import('../../src/ib/hooks');
  for (let s = 0; s < 8; s++) if (maskDue(cfg.ib.mask, s)) seen.push(s);
  assert.deepEqual(seen, [3, 6]);
  const res = await train({ cfg });
  const m = res.lastMask!;
  const zeros = m.flatMap((v, c) => (v === 0 ? [c] : []));
  assert.ok(zeros.length >= 2 && zeros.length <= 4, `code rule drops lowY ∪ highX channels, got ${zeros}`);
  assert.equal(m[m.length - 1], 1, 'the reference off-by-one never masks the last channel');
});
