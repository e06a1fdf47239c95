// NaN/Inf in the loss or the gradients. `train.nanPolicy: stop` ends the run with exit 2 and a
// message naming the epoch, the step and the last good checkpoint; `skip` drops the batch
// (weights, momentum and BatchNorm statistics untouched) and counts it in metrics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { buildModel } from '../../src/models/registry';
import { TrainStepper, NonFiniteLossError } from '../../src/train/step';
import { readCheckpointFiles, readCheckpointSidecar } from '../../src/runs/checkpoint';
import { readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig, tempDir } from '../helpers/configs';
import { hasStackTrace, runCli, runDirsOf, tinyYaml } from './cli';

const root = tempDir('ibrar-nan-');

test('nanPolicy stop: exit 2 naming epoch, step and the last good checkpoint, which loads', { timeout: 60_000 }, async () => {
  const runs = path.join(root, 'stop');
  const cfg = path.join(root, 'stop.yaml');
  // lr 1e6 blows the weights up within a few steps (deterministic for this seed).
  fs.writeFileSync(cfg, tinyYaml(runs, { train: 'lr: 1.0e6, checkpointEvery: 2' }).replace('lr: 0.05, ', ''));
  const res = await runCli(['train', '--config', cfg]);
  assert.equal(res.code, 2, res.stderr);
  const [runDir] = runDirsOf(runs);
  const ckDir = runLayout(runDir).checkpoints;
  const m = /ibrar: non-finite (loss|gradient) at epoch (\d+), step (\d+) .*; the last good checkpoint is (\S+) \(epoch (\d+), after step (\d+)\)/.exec(res.stderr);
  assert.ok(m, res.stderr);
  assert.equal(m[4], path.join(ckDir, 'last.json'));
  const ck = readCheckpointSidecar(ckDir, 'last');
  assert.equal(Number(m[5]), ck.epoch + 1);
  assert.equal(Number(m[6]), ck.step);
  assert.equal(Number(m[2]), ck.epoch + 1, 'the checkpoint is from the epoch that failed');
  assert.ok(Number(m[3]) > ck.step && Number(m[3]) <= ck.step + 2, `failed at step ${m[3]}, checkpoint after step ${ck.step} (every 2)`);
  assert.doesNotThrow(() => readCheckpointFiles(ckDir, 'last'));
  assert.ok(!hasStackTrace(res.stderr));
  assert.equal(res.stderr.trim().split('\n').filter((l) => l.startsWith('ibrar:')).length, 1, 'one error line');
});

test('nanPolicy skip: the run completes, skipped batches are counted and the weights stay finite', { timeout: 60_000 }, async () => {
  const runs = path.join(root, 'skip');
  const cfg = path.join(root, 'skip.yaml');
  fs.writeFileSync(cfg, tinyYaml(runs, { epochs: 2, train: 'lr: 1.0e6, nanPolicy: skip' }).replace('lr: 0.05, ', ''));
  const res = await runCli(['train', '--config', cfg]);
  assert.equal(res.code, 0, res.stderr);
  const [runDir] = runDirsOf(runs);
  const rows = readMetrics(runDir);
  assert.equal(rows.length, 2);
  const skipped = rows.map((r) => r.nan_skipped as number);
  assert.ok(skipped.every((n) => Number.isInteger(n) && n >= 0 && n <= 8), `per epoch at most its 8 steps: ${skipped}`);
  assert.ok(skipped[0] + skipped[1] > 0, `some batches were skipped: ${skipped}`);
  const { weights } = readCheckpointFiles(runLayout(runDir).checkpoints, 'last');
  for (const [name, t] of weights) assert.ok((t.data as Float32Array).every(Number.isFinite), `${name} finite`);
  const log = fs.readFileSync(runLayout(runDir).log, 'utf8');
  assert.equal((log.match(/batch skipped/g) ?? []).length, skipped[0] + skipped[1], 'each skip is logged');
});

test('a NaN batch is skipped without touching weights, momentum or BatchNorm statistics; stop names epoch and step', async () => {
  await initBackend('cpu');
  const cfg = tinyConfig({ backend: 'cpu', train: { nanPolicy: 'skip' } });
  const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1).fork('init'));
  const stepper = new TrainStepper(cfg, model, 4);
  const rng = new Rng(5);
  const clean = { x: rng.fillUniform(new Float32Array(8 * 192), 0, 1), y: Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]), n: 8, shape: [8, 8, 3] as [number, number, number] };
  const poisoned = { ...clean, x: Float32Array.from(clean.x) };
  poisoned.x[77] = NaN;
  const snap = () => model.params.map((p) => Array.from(p.variable.dataSync()));
  const momentum = async () => (await stepper.optimizer.exportState()).map((s) => Array.from(s.data));

  const first = await stepper.step(clean, 0, 0);
  assert.equal(first.skipped, false);
  const before = snap();
  const momBefore = await momentum();
  const tensors = tf.memory().numTensors;
  const out = await stepper.step(poisoned, 0, 1);
  assert.equal(out.skipped, true);
  assert.ok(Number.isNaN(out.loss));
  assert.deepEqual(snap(), before, 'weights and BatchNorm running statistics unchanged');
  assert.deepEqual(await momentum(), momBefore, 'momentum buffers unchanged');
  assert.equal(tf.memory().numTensors, tensors, 'a skipped step leaks no tensor');
  const after = await stepper.step(clean, 0, 2);
  assert.equal(after.skipped, false);
  assert.ok(Number.isFinite(after.loss));
  assert.notDeepEqual(snap(), before, 'training continues on the next clean batch');

  stepper.dispose();
  const stopCfg = tinyConfig({ backend: 'cpu', train: { nanPolicy: 'stop' } });
  const stopper = new TrainStepper(stopCfg, model, 4);
  await assert.rejects(stopper.step(poisoned, 4, 6), (e: unknown) => {
    assert.ok(e instanceof NonFiniteLossError);
    assert.equal(e.epoch, 4);
    assert.equal(e.step, 6);
    assert.match(e.message, /non-finite loss at epoch 5, step 7/);
    return true;
  });
  stopper.dispose();
  model.dispose();
});
