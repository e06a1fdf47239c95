import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runProbe } from '../../../src/jobs/probe/probe';
import { readState } from '../../../src/runs/probe-files';
import { readMetrics } from '../../../src/runs/metrics';
import { tinyConfig } from '../../helpers/configs';

const config = () =>
  tinyConfig({
    name: 'probe',
    data: { synthetic: { trainSize: 128, testSize: 64 } },
    train: { epochs: 2, batchSize: 32 },
    ib: { enabled: true, layers: ['conv3', 'fc1'] },
    eval: { eps: 0.2, steps: 2, batchSize: 64 },
  });

test('an interrupted probe, re-run, continues: finished candidates are kept, the cut one resumes its run', async () => {
  const cfg = config();
  let done = 0;
  let stepsAfter = 0;
  const first = await runProbe({
    cfg,
    layers: ['conv3'],
    shouldStop: () => done >= 1 && stepsAfter >= 3,
    progress: { onCandidateEnd: (_c, o) => void (o === 'done' && done++), train: { onStep: () => void (done >= 1 && stepsAfter++) } },
  });
  assert.equal(first.interrupted, true);
  const st = readState(first.probeDir)!;
  assert.deepEqual(st.candidates.map((c) => [c.id, c.status]), [['ce', 'done'], ['conv3', 'training'], ['all', 'pending'], ['robust', 'pending']]);
  const ceRun = st.candidates[0].runDir;
  const cutRun = st.candidates[1].runDir!;
  assert.equal(first.result.complete, false);
  assert.match(fs.readFileSync(first.files[2], 'utf8'), /conv3 \(training\)/);

  const started: string[] = [];
  const second = await runProbe({ cfg, layers: ['conv3'], progress: { onCandidateStart: (c) => void started.push(c.id) } });
  assert.equal(second.probeDir, first.probeDir, 'the same probe directory is continued');
  assert.deepEqual(started, ['conv3', 'all', 'robust'], 'the finished baseline is not retrained');
  assert.equal(second.interrupted, false);
  assert.equal(second.result.complete, true);
  assert.equal(second.result.rows[0].runDir, ceRun);
  assert.equal(second.result.rows[1].runDir, cutRun, 'the interrupted candidate resumed its own run');
  assert.deepEqual(readMetrics(cutRun).map((r) => r.epoch), [1, 2]);
  assert.deepEqual(fs.readdirSync(path.dirname(cutRun)).filter((n) => /^\d{8}-\d{6}/.test(n)), [path.basename(cutRun)]);
});

test('--jobs 2 runs candidates in worker processes with the same results layout', async () => {
  const cfg = config();
  const out = await runProbe({ cfg, layers: ['fc1'], jobs: 2 });
  assert.equal(out.interrupted, false);
  assert.deepEqual(out.failed, []);
  assert.deepEqual(out.result.rows.map((r) => [r.id, r.status]), [['ce', 'done'], ['fc1', 'done'], ['all', 'done'], ['robust', 'done']]);
  for (const r of out.result.rows) {
    assert.ok(fs.existsSync(path.join(out.probeDir, 'candidates', r.id, 'worker.log')));
    assert.ok(r.adv_acc !== null && r.clean_acc !== null && r.clean_acc > 0.5);
  }
});
