import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { train } from '../../src/jobs/train';
import { readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig } from '../helpers/configs';

test('CE training on separable synthetic data reaches > 95% train accuracy and writes the run dir', async () => {
  const cfg = tinyConfig({ train: { epochs: 4 } });
  const res = await train({ cfg });
  const last = res.records[res.records.length - 1];
  assert.ok(last.train_acc > 0.95, `train acc ${last.train_acc}`);
  assert.ok(last.test_acc > 0.9, `test acc ${last.test_acc}`);
  const layout = runLayout(res.runDir);
  for (const f of [layout.config, layout.metricsJsonl, layout.metricsCsv, layout.log, path.join(layout.checkpoints, 'last.json'), path.join(layout.checkpoints, 'best.safetensors')]) {
    assert.ok(fs.existsSync(f), `${f} exists`);
  }
  const rows = readMetrics(res.runDir);
  assert.equal(rows.length, 4);
  assert.deepEqual(rows.map((r) => r.epoch), [1, 2, 3, 4]);
  const csv = fs.readFileSync(layout.metricsCsv, 'utf8').trim().split('\n');
  assert.equal(csv.length, 5, 'header once + one row per epoch');
  assert.match(csv[0], /^epoch,lr,train_loss,train_acc,test_acc,seconds,images_per_sec,nan_skipped/);
});

test('the same config and seed give identical metrics; another seed gives different ones', async () => {
  const a = await train({ cfg: tinyConfig({ train: { epochs: 1 } }) });
  const b = await train({ cfg: tinyConfig({ train: { epochs: 1 } }) });
  const c = await train({ cfg: tinyConfig({ seed: 4, train: { epochs: 1 } }) });
  assert.equal(a.records[0].train_loss, b.records[0].train_loss);
  assert.equal(a.records[0].test_acc, b.records[0].test_acc);
  assert.notEqual(c.records[0].train_loss, a.records[0].train_loss, 'the seed reaches init, data and shuffling');
});

test('no tensor leak: numTensors is identical after step 2 and step 50 (CE)', async () => {
  const counts = new Map<number, number>();
  let global = 0;
  await train({
    cfg: tinyConfig({ train: { epochs: 7, batchSize: 32 } }),
    progress: { onStep: () => void counts.set(++global, tf.memory().numTensors) },
  });
  assert.ok(global >= 50);
  assert.equal(counts.get(50), counts.get(2));
});

test('no tensor leak over PGD-AT + IB + mask steps', async () => {
  const counts: number[] = [];
  await train({
    cfg: tinyConfig({
      train: { method: 'pgd-at', epochs: 1, batchSize: 32, attack: { steps: 2 } },
      ib: { enabled: true, layers: 'all', alpha: 0.01, beta: 0.1, mask: { enabled: true, rule: 'code', lowY: 2, highX: 2, every: 2 } },
    }),
    progress: { onStep: () => void counts.push(tf.memory().numTensors) },
  });
  assert.ok(counts.length >= 8);
  assert.equal(counts[counts.length - 1], counts[1]);
});

for (const where of ['at an epoch boundary', 'mid-epoch'] as const) {
  test(`resume ${where} ends with the same metrics as an uninterrupted run`, async () => {
    const base = { train: { epochs: 3 }, ib: { enabled: true, layers: 'all', alpha: 0.005, beta: 0.05 } };
    const full = await train({ cfg: tinyConfig(base) });
    let steps = 0;
    const stopAt = where === 'mid-epoch' ? 11 : 8; // 8 steps per epoch
    const cut = await train({ cfg: tinyConfig(base), shouldStop: () => ++steps >= stopAt, progress: {} });
    assert.equal(cut.interrupted, true);
    const resumed = await train({ resumeDir: cut.runDir });
    assert.equal(resumed.interrupted, false);
    const rows = readMetrics(cut.runDir);
    assert.equal(rows.length, 3, 'one metrics row per epoch, none duplicated');
    const want = full.records[2];
    const got = resumed.records[resumed.records.length - 1];
    for (const k of ['train_loss', 'train_acc', 'test_acc', 'ce', 'ib'] as const) assert.equal(got[k], want[k], `${k}: ${got[k]} vs ${want[k]}`);
  });
}
