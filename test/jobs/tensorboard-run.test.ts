// TensorBoard events of real (tiny) runs, decoded by the independent reader in
// test/helpers/tensorboard.ts and compared with the run's own files: metrics.jsonl per epoch,
// info_plane.jsonl and adv_curve.jsonl of the monitor, and the evaluation reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { train } from '../../src/jobs/train';
import { evaluateRun } from '../../src/jobs/eval';
import { readMetrics } from '../../src/runs/metrics';
import { readAdvCurve, readInfoPlane } from '../../src/runs/monitor-files';
import { tinyConfig } from '../helpers/configs';
import { readScalarsIn, scalarIndex, type Scalar } from '../helpers/tensorboard';

/** metrics.jsonl key → tag, written out here rather than taken from the module under test. */
function tagOf(key: string): string {
  const fixed: Record<string, string> = {
    train_loss: 'loss/total',
    train_acc: 'acc/train',
    test_acc: 'acc/test',
    lr: 'train/lr',
    nan_skipped: 'train/nan_skipped',
    images_per_sec: 'perf/images_per_sec',
    seconds: 'perf/epoch_seconds',
  };
  if (fixed[key]) return fixed[key];
  if (key.startsWith('hx/') || key.startsWith('hy/')) return `ib/${key}`;
  return `loss/${key}`;
}

/** The one value of (tag, step); fails when absent or written more than once. */
function only(index: Map<string, Map<number, number[]>>, tag: string, step: number): number {
  const values = index.get(tag)?.get(step);
  assert.ok(values, `tag ${tag} at step ${step} is in the events (tags: ${[...index.keys()].join(', ')})`);
  assert.equal(values.length, 1, `${tag} at step ${step} written once, found ${values.length}`);
  return values[0];
}

function assertOncePerStep(scalars: readonly Scalar[]): void {
  for (const [tag, steps] of scalarIndex(scalars)) for (const [step, values] of steps) assert.equal(values.length, 1, `${tag} at step ${step}: ${values.length} values`);
}

const tbDir = (runDir: string) => path.join(runDir, 'tb');

test('a tiny training writes events whose scalars equal metrics.jsonl, the monitor files and the evaluation', async () => {
  const cfg = tinyConfig({
    train: { epochs: 2, monitor: { infoPlaneEvery: 4, advAccEvery: 1, n: 32, attack: 'fgsm' } },
    ib: { enabled: true, layers: 'all', alpha: 0.005, beta: 0.05 },
    eval: { attacks: ['fgsm'], n: 64, batchSize: 64 },
  });
  assert.equal(cfg.train.tensorboard, true, 'on by default');
  const res = await train({ cfg });
  const names = fs.readdirSync(tbDir(res.runDir));
  const host = os.hostname();
  assert.ok(names.length >= 2, `training and its evaluation each wrote a file: ${names.join(', ')}`);
  for (const n of names) assert.match(n, new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.${host.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\.\\d+)?$`));

  const scalars = readScalarsIn(tbDir(res.runDir));
  assertOncePerStep(scalars);
  const index = scalarIndex(scalars);
  const rows = readMetrics(res.runDir);
  assert.equal(rows.length, 2);
  let checked = 0;
  for (const row of rows) {
    for (const [key, v] of Object.entries(row)) {
      if (key === 'epoch') continue;
      const want = v === null ? NaN : (v as number);
      assert.equal(only(index, tagOf(key), row.epoch as number), Math.fround(want), `${key} of epoch ${row.epoch}`);
      checked++;
    }
  }
  assert.ok(checked >= 2 * 15, `${checked} per-epoch scalars checked`);
  for (const tag of ['loss/ce', 'loss/ib', 'ib/hx/conv1', 'ib/hy/fc1', 'acc/test', 'train/lr', 'perf/images_per_sec']) assert.ok(index.has(tag), tag);

  const plane = readInfoPlane(res.runDir);
  assert.ok(plane.length >= 3, 'step 0 and every 4 steps');
  for (const rec of plane) {
    for (const [layer, v] of Object.entries(rec.hx)) assert.equal(only(index, `info_plane/hx/${layer}`, rec.step), Math.fround(v));
    for (const [layer, v] of Object.entries(rec.hy)) assert.equal(only(index, `info_plane/hy/${layer}`, rec.step), Math.fround(v));
  }
  const curve = readAdvCurve(res.runDir);
  assert.equal(curve.length, 2);
  for (const rec of curve) {
    assert.equal(only(index, 'monitor/clean_acc', rec.epoch), Math.fround(rec.clean_acc));
    assert.equal(only(index, 'monitor/adv_acc/fgsm', rec.epoch), Math.fround(rec.adv_acc));
  }

  // The end-of-training evaluation, at step = the evaluated checkpoint's epoch.
  const report = res.evaluation!.report!;
  assert.equal(report.checkpoint.epoch, 2);
  assert.equal(only(index, 'eval/clean_acc', 2), Math.fround(report.clean_acc));
  assert.equal(only(index, 'eval/fgsm', 2), Math.fround(report.attacks[0].robust_acc));
  assert.equal(only(index, 'eval/worst_case_acc', 2), Math.fround(report.worst_case_acc));

  // Another budget is its own series; the same request again is reused and writes nothing.
  const other = await evaluateRun({ runDir: res.runDir, eps: 0.1 });
  const files = fs.readdirSync(tbDir(res.runDir)).length;
  const again = await evaluateRun({ runDir: res.runDir, eps: 0.1 });
  assert.ok(again.reused);
  assert.equal(fs.readdirSync(tbDir(res.runDir)).length, files, 'a reused evaluation adds no event file');
  const after = scalarIndex(readScalarsIn(tbDir(res.runDir)));
  assert.equal(only(after, 'eval/fgsm{eps=1/10}', 2), Math.fround(other.report!.attacks[0].robust_acc));
  assert.equal(only(after, 'eval/clean_acc', 2), Math.fround(report.clean_acc), 'clean accuracy does not depend on ε: not written twice');
});

test('train.tensorboard: false writes no events, in training or evaluation', async () => {
  const res = await train({ cfg: tinyConfig({ train: { epochs: 1, tensorboard: false }, eval: { attacks: ['fgsm'], n: 32 } }) });
  assert.ok(res.evaluation?.report);
  await evaluateRun({ runDir: res.runDir, eps: 0.1 });
  assert.equal(fs.existsSync(tbDir(res.runDir)), false);
});

test('a resumed run adds a new event file; every epoch ends up once, equal to an uninterrupted run, even if events were lost', async () => {
  const base = { train: { epochs: 3 }, ib: { enabled: true, layers: ['conv2', 'fc1'], alpha: 0.005, beta: 0.05 } };
  const full = await train({ cfg: tinyConfig(base) });
  let steps = 0;
  const cut = await train({ cfg: tinyConfig(base), shouldStop: () => ++steps >= 12 }); // 8 steps per epoch: mid-epoch 2
  assert.equal(cut.interrupted, true);
  const before = fs.readdirSync(tbDir(cut.runDir));
  assert.equal(before.length, 1);
  await train({ resumeDir: cut.runDir });
  const after = fs.readdirSync(tbDir(cut.runDir));
  assert.equal(after.length, 2, 'the resumed session wrote its own file');
  assert.ok(after.includes(before[0]), 'the first file is kept');

  const want = scalarIndex(readScalarsIn(tbDir(full.runDir)));
  const check = (runDir: string) => {
    const scalars = readScalarsIn(tbDir(runDir));
    assertOncePerStep(scalars);
    const got = scalarIndex(scalars);
    for (const tag of ['loss/total', 'loss/ce', 'loss/ib', 'ib/hx/conv2', 'ib/hy/fc1', 'acc/train', 'acc/test', 'train/lr']) {
      for (const epoch of [1, 2, 3]) assert.equal(only(got, tag, epoch), only(want, tag, epoch), `${tag} epoch ${epoch}`);
    }
  };
  check(cut.runDir);

  // Events lost (e.g. a kill between a checkpoint's commit and its event): the next session
  // writes them from metrics.jsonl.
  let steps2 = 0;
  const cut2 = await train({ cfg: tinyConfig(base), shouldStop: () => ++steps2 >= 17 }); // the end of epoch 2 is committed
  fs.rmSync(tbDir(cut2.runDir), { recursive: true });
  await train({ resumeDir: cut2.runDir });
  check(cut2.runDir);
});
