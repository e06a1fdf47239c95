// Memory stays flat: tf.memory().numTensors constant and process RSS within 5% after warm-up,
// over many steps of CE, IB-RAR and PGD-AT training (with per-epoch evaluation, checkpoints
// and metrics, through train()) and over evaluations; evaluation memory does not grow with n.
// `node dist/bench/memory.js` runs the same for 1,000 steps each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { tempDir } from '../helpers/configs';
import { evalMemory, formatReport, sample, tinyExperiment, trainingMemory } from '../../bench/memory';

const STEPS = 160; // 20 epochs of 8 steps
const runs = tempDir('ibrar-memory-');
let lastRun = '';

test('warm-up (not measured): first-use allocations of the process (wasm heap, JIT, malloc arenas)', { timeout: 60_000 }, async () => {
  await trainingMemory('warm-up', tinyExperiment(runs, 'wasm', 'ibrar', 1), 64, 8);
});

for (const method of ['ce', 'ibrar', 'pgd-at'] as const) {
  test(`${method}: ${STEPS} training steps leave numTensors constant and RSS within 5%; nothing left after the run`, { timeout: 60_000 }, async () => {
    const before = sample(0).numTensors;
    const { report, runDir } = await trainingMemory(method, tinyExperiment(runs, 'wasm', method, 1), STEPS, 8);
    lastRun = runDir;
    console.log(formatReport(report));
    assert.equal(report.samples.length, STEPS / 8);
    assert.ok(report.tensorsFlat, `numTensors per sample: ${report.samples.map((s) => s.numTensors).join(' ')}`);
    assert.equal(report.end.numBytes, report.warm.numBytes);
    assert.ok(report.rssGrowth < 0.05, `RSS grew ${(100 * report.rssGrowth).toFixed(2)}%: ${report.samples.map((s) => s.rssMiB.toFixed(1)).join(' ')}`);
    assert.equal(tf.memory().numTensors, before, 'the model, optimizer and all step tensors are freed when train() returns');
  });
}

test('evaluation streams the test set: memory per batch is the same for n = 64 and n = 256, and nothing leaks', { timeout: 60_000 }, async () => {
  const before = sample(0).numTensors;
  const small = await evalMemory('eval n=64', lastRun, 64, 16, ['fgsm', 'pgd']);
  assert.equal(tf.memory().numTensors, before, 'an evaluation frees everything it made');
  const large = await evalMemory('eval n=256', lastRun, 256, 16, ['fgsm', 'pgd']);
  assert.equal(tf.memory().numTensors, before);
  console.log(formatReport(small));
  console.log(formatReport(large));
  for (const r of [small, large]) {
    assert.ok(r.tensorsFlat, `${r.label}: ${r.samples.map((s) => s.numTensors).join(' ')}`);
    assert.ok(r.rssGrowth < 0.05, `${r.label}: RSS grew ${(100 * r.rssGrowth).toFixed(2)}%`);
  }
  const peak = (r: typeof small) => Math.max(...r.samples.map((s) => s.numBytes));
  assert.equal(peak(large), peak(small), 'tensor bytes do not depend on n');
  assert.equal(large.end.numTensors, small.end.numTensors);
});
