// Resume never loses, rewrites or mixes up a run. A run whose `last` sidecar is gone resumes
// from the newest checkpoint that verifies (`best`), or is refused (exit 2) saying what was
// found, never silently started over; a resume that fails validation (the sidecar's epoch,
// step, global step, trainer state, channel mask or optimizer slots; a changed config.yaml)
// leaves every file of the run byte-for-byte as it was; a doctored evaluation state is
// discarded and the evaluation recomputed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { train } from '../../src/jobs/train';
import { evaluateRun } from '../../src/jobs/eval';
import { readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { canonicalJson } from '../../src/runs/config-hash';
import { tinyConfig, tempDir } from '../helpers/configs';
import { checkBadCase, type BadCase } from './bad-input';
import { contentSnapshot, pool, runCli, snapshot, snapshotDiff } from './cli';

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const ck = (run: string) => runLayout(run).checkpoints;
const sidecarOf = (run: string, tag = 'last') => path.join(ck(run), `${tag}.json`);
const readSidecar = (run: string, tag = 'last') => JSON.parse(fs.readFileSync(sidecarOf(run, tag), 'utf8'));
const writeSidecar = (run: string, s: unknown, tag = 'last') => fs.writeFileSync(sidecarOf(run, tag), JSON.stringify(s, null, 2));
const editSidecar = (run: string, edit: (s: Record<string, any>) => void, tag = 'last') => {
  const s = readSidecar(run, tag);
  edit(s);
  writeSidecar(run, s, tag);
};

/** Every file of a run with its bytes' hash: "byte-identical" means this is unchanged. */
const contents = contentSnapshot;

// A 3-epoch run stopped after epoch 2 (checkpoints every 3 steps; `best` at the best epoch so far).
let stopped = '';
let stoppedMetrics: ReturnType<typeof readMetrics> = [];

test('setup: a 3-epoch run stopped after its second epoch', { timeout: 180_000 }, async () => {
  let epochs = 0;
  const res = await train({
    cfg: tinyConfig({ backend: 'cpu', train: { epochs: 3, checkpointEvery: 3 } }),
    progress: { onEpochEnd: () => void epochs++ },
    shouldStop: () => epochs >= 2,
  });
  assert.equal(res.interrupted, true);
  stopped = res.runDir;
  stoppedMetrics = readMetrics(stopped);
  assert.deepEqual(stoppedMetrics.map((r) => r.epoch), [1, 2]);
});

function copyRun(): string {
  const dir = path.join(tempDir('ibrar-resume-'), 'run');
  fs.cpSync(stopped, dir, { recursive: true });
  return dir;
}

test('last.json deleted, best present: resumed from best (the newest that verifies), never started over', { timeout: 120_000 }, async () => {
  const run = copyRun();
  const bestEpoch = readSidecar(run, 'best').epoch as number;
  fs.rmSync(sidecarOf(run));
  const res = await runCli(['train', '--resume', run]);
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stderr, /checkpoint skipped: last: \S+last\.json: no checkpoint 'last': the sidecar is missing although last\.safetensors exists/);
  const rows = readMetrics(run);
  assert.deepEqual(rows.map((r) => r.epoch), [1, 2, 3], 'continued to the end from best, not from epoch 0');
  // The epochs up to best are kept as they were (the resume truncated to best and went on).
  for (let e = 0; e < bestEpoch; e++) assert.deepEqual(rows[e], stoppedMetrics[e]);
});

test('last.json deleted and no best: exit 2 naming what was found, the run byte-identical', { timeout: 60_000 }, async () => {
  const run = copyRun();
  for (const f of fs.readdirSync(ck(run))) if (f.startsWith('best.')) fs.rmSync(path.join(ck(run), f));
  fs.rmSync(sidecarOf(run));
  const before = contents(run);
  const res = await runCli(['train', '--resume', run]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /^ibrar: \S+last\.json: no checkpoint 'last': the sidecar is missing although last\.safetensors exists/);
  assert.deepEqual(contents(run), before);
});

test('last and best both unloadable: exit 2 listing both, not started over, the run byte-identical', { timeout: 60_000 }, async () => {
  const run = copyRun();
  fs.writeFileSync(sidecarOf(run), '{"truncated');
  editSidecar(run, (s) => (s.arch = 'vgg16'), 'best');
  const before = contents(run);
  const res = await runCli(['train', '--resume', run]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /no checkpoint of this run can be loaded, so it cannot be resumed \(and is not started over: it has checkpoint files\)\. Found: last: .*not valid JSON.*; best: .*architecture 'vgg16'/);
  assert.deepEqual(contents(run), before);
});

/** A resume that must be refused, with the run (metrics, log, checkpoints: everything) unchanged. */
function refused(name: string, edit: (run: string) => void, file: (run: string) => string, expect: RegExp): BadCase {
  const runOf = (cwd: string) => path.join(cwd, 'run');
  return {
    name,
    setup: (cwd) => {
      fs.cpSync(stopped, runOf(cwd), { recursive: true });
      // Only `last`: a good `best` would (rightly) be resumed from instead.
      for (const f of fs.readdirSync(ck(runOf(cwd)))) if (f.startsWith('best.')) fs.rmSync(path.join(ck(runOf(cwd)), f));
      edit(runOf(cwd));
      return ['train', '--resume', runOf(cwd)];
    },
    file: (cwd) => file(runOf(cwd)),
    expect,
    untouched: runOf,
  };
}

const sc = (run: string) => sidecarOf(run);
const refusedCases: BadCase[] = [
  refused('epoch beyond the config', (r) => editSidecar(r, (s) => (s.epoch = 7)), sc, /^epoch: the checkpoint is at epoch 7, beyond the config's 3 epochs/),
  refused('step beyond the epoch', (r) => editSidecar(r, (s) => (s.step = 99)), sc, /^step: the checkpoint is at step 99 of an epoch that has 8 steps/),
  refused('global step beyond epoch and step', (r) => editSidecar(r, (s) => (s.globalStep = 1000)), sc, /^globalStep: global step 1000 is beyond epoch 2 step 0 \(8 steps per epoch\)/),
  refused('trainer state field missing', (r) => editSidecar(r, (s) => delete s.state.optimizerStarted), sc, /^state\.optimizerStarted: invalid trainer state in the checkpoint: Required/),
  refused('trainer state field of the wrong type', (r) => editSidecar(r, (s) => (s.state.bestTestAcc = 'high')), sc, /^state\.bestTestAcc: invalid trainer state in the checkpoint: Expected number, received string/),
  refused('best accuracy out of range', (r) => editSidecar(r, (s) => (s.state.bestTestAcc = 7)), sc, /^state\.bestTestAcc: invalid trainer state in the checkpoint: Number must be less than or equal to 1/),
  refused('garbage epoch sums at a mid-epoch position', (r) => editSidecar(r, (s) => Object.assign(s, { epoch: 1, step: 3, globalStep: 11, state: { ...s.state, accumulator: { steps: 'x' } } })), sc, /^state\.accumulator\.steps: invalid trainer state in the checkpoint: Expected number/),
  refused(
    'epoch sums that disagree with the step',
    (r) => editSidecar(r, (s) => Object.assign(s, { epoch: 1, step: 3, globalStep: 11, state: { ...s.state, accumulator: { steps: 5, seen: 80, correct: 10, lossSum: 1, nanSkipped: 0, seconds: 1, logSums: {} } } })),
    sc,
    /^state\.accumulator\.steps: the epoch sums count 5 trained and 0 skipped steps, but the checkpoint is at step 3/,
  ),
  refused('a channel mask of the wrong shape', (r) => editSidecar(r, (s) => (s.mask = [1, 0, 1])), sc, /^mask: the stored channel mask must be 32 entries of 0 or 1 \(one per channel of conv3\); found 3 entries/),
  refused(
    'optimizer slots that do not fit the model (re-signed)',
    (r) => {
      // Rename one momentum slot in the optimizer file and the sidecar, and re-sign it:
      // everything verifies, but the model has no such parameter. Before: internal error (exit 1).
      const s = readSidecar(r);
      const file = path.join(ck(r), s.files.optimizer.file);
      const buf = fs.readFileSync(file);
      const n = Number(buf.readBigUInt64LE(0));
      const header = buf.subarray(8, 8 + n).toString('utf8').replace('"conv1.weight.momentum_buffer"', '"conv9.weight.momentum_buffer"');
      const out = Buffer.concat([buf.subarray(0, 8), Buffer.from(header), buf.subarray(8 + n)]);
      fs.writeFileSync(file, out);
      s.optimizer = s.optimizer.map((o: { name: string }) => (o.name === 'conv1.weight.momentum_buffer' ? { ...o, name: 'conv9.weight.momentum_buffer' } : o));
      s.files.optimizer.sha256 = sha(out);
      writeSidecar(r, s);
    },
    (r) => path.join(ck(r), readSidecar(r).files.optimizer.file),
    /^the optimizer state does not fit the model: optimizer state lacks conv1\.weight\.momentum_buffer/,
  ),
  refused('config.yaml edited since the checkpoint', (r) => fs.appendFileSync(runLayout(r).config, '# edited\n'), (r) => runLayout(r).config, /^config\.yaml changed since this checkpoint was written; resuming would mix two configs in one run\. Start a new run, or resume anyway with --force/),
  refused(
    'config.yaml edited and the file hash removed from the sidecar: the config hash still tells',
    (r) => {
      editSidecar(r, (s) => delete s.configFileSha256);
      fs.writeFileSync(runLayout(r).config, fs.readFileSync(runLayout(r).config, 'utf8').replace(/lr: [0-9.e-]+/, 'lr: 0.5'));
    },
    (r) => runLayout(r).config,
    /^config\.yaml changed since this checkpoint was written/,
  ),
];

test(`${refusedCases.length} resumes that fail validation: exit 2, metrics, log and checkpoints byte-identical`, { timeout: 240_000 }, async () => {
  const failures: string[] = [];
  // checkBadCase compares every file's bytes (and sizes, times) of the run before and after.
  await pool(refusedCases, 3, async (c) => void (await checkBadCase(c).catch((e: Error) => failures.push(e.message))));
  assert.deepEqual(failures, []);
});

test('a refused resume changes no byte of metrics.jsonl, metrics.csv or log.jsonl (checked by content)', { timeout: 60_000 }, async () => {
  const run = copyRun();
  editSidecar(run, (s) => (s.state.accumulator = 'garbage'));
  const before = contents(run);
  const res = await runCli(['train', '--resume', run]);
  assert.equal(res.code, 2, res.stderr);
  assert.deepEqual(contents(run), before);
  for (const f of ['metrics.jsonl', 'metrics.csv', 'log.jsonl']) assert.ok(before.has(f), f);
});

test('--force resumes a changed config.yaml and records it (sidecar state and log)', { timeout: 120_000 }, async () => {
  const run = copyRun();
  fs.appendFileSync(runLayout(run).config, '# edited\n');
  const res = await runCli(['train', '--resume', run, '--force']);
  assert.equal(res.code, 0, res.stderr);
  const forced = readSidecar(run).state.forced as Array<{ checkpointConfig: string; runConfig: string }>;
  assert.equal(forced.length, 1);
  assert.equal(forced[0].runConfig, sha(fs.readFileSync(runLayout(run).config)));
  assert.match(fs.readFileSync(runLayout(run).log, 'utf8'), /resumed with --force although config\.yaml changed/);
});

// ------------------------------------------------------------------ evaluation state

function resign(file: string, edit: (state: Record<string, any>) => void): void {
  const outer = JSON.parse(fs.readFileSync(file, 'utf8'));
  edit(outer.state);
  outer.sha256 = sha(canonicalJson(outer.state));
  fs.writeFileSync(file, JSON.stringify(outer));
}

test('a doctored evaluation state (re-signed) is discarded and the evaluation recomputed', { timeout: 120_000 }, async () => {
  const run = copyRun();
  const req = { runDir: run, attacks: ['fgsm'], n: 64, batchSize: 16 };
  const reference = (await evaluateRun({ ...req, runDir: copyRun() })).report!;
  const doctors: Array<[string, (s: Record<string, any>) => void, RegExp]> = [
    ['doneBatches larger than the records', (s) => (s.doneBatches = 3), /3 batches done|clean predictions for 3 batches/],
    ['doneBatches beyond the request', (s) => (s.doneBatches = 99), /99 batches done of 4/],
    ['a prediction outside the classes', (s) => (s.clean[0] = 42), /a prediction outside 0\.\.3/],
    ['records for an attack not run', (s) => (s.preds.cw = s.preds.fgsm), /records for cw, which this evaluation does not run/],
    ['a report name that escapes the eval folder', (s) => (s.report = { createdAt: 'x', base: '../../../escaped' }), /report name '\.\.\/\.\.\/\.\.\/escaped' is not a timestamp/],
  ];
  for (const [what, edit, problem] of doctors) {
    // Stopped after its first batch (counted by the batches done, not by how often it is asked).
    let done = 0;
    const first = await evaluateRun(req, { fresh: true, shouldStop: () => done >= 1, progress: { onBatch: () => void done++ } });
    assert.equal(first.interrupted, true, what);
    const state = fs.readdirSync(runLayout(run).evalDir).find((f) => f.startsWith('.state-'))!;
    resign(path.join(runLayout(run).evalDir, state), edit);
    const notes: string[] = [];
    const out = await evaluateRun(req, { fresh: true, progress: { onNote: (m) => notes.push(m) } });
    assert.ok(notes.some((n) => /^discarding the saved state of this evaluation/.test(n) && problem.test(n)), `${what}: ${notes.join('; ')}`);
    assert.equal(out.interrupted, false);
    assert.deepEqual(
      out.report!.attacks.map((a) => a.robust_acc),
      reference.attacks.map((a) => a.robust_acc),
      `${what}: recomputed from scratch`,
    );
    assert.equal(out.report!.clean_acc, reference.clean_acc);
    assert.ok(!fs.existsSync(path.join(path.dirname(run), 'escaped.json')), 'nothing written outside the eval folder');
  }
});

test('an unchanged state resumes (the check does not discard good states)', { timeout: 120_000 }, async () => {
  const run = copyRun();
  const req = { runDir: run, attacks: ['fgsm'], n: 64, batchSize: 16 };
  let done = 0;
  await evaluateRun(req, { shouldStop: () => done >= 2, progress: { onBatch: () => void done++ } });
  let resumedBatches = -1;
  const before = snapshot(runLayout(run).evalDir);
  const out = await evaluateRun(req, { progress: { onStart: (i) => void (resumedBatches = i.resumedBatches) } });
  assert.equal(resumedBatches, 2);
  assert.equal(out.interrupted, false);
  assert.notEqual(snapshotDiff(before, snapshot(runLayout(run).evalDir)), '');
});
