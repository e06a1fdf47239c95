// Disk faults. An unwritable runs folder is reported before training starts. A full disk
// (ENOSPC) while a checkpoint is written leaves the previous checkpoint intact and loadable,
// leaves no temp file behind, and `--resume` later continues exactly.
//
// How the faults are made: tests run as root here, and root ignores permission bits, so the
// unwritable folder is one whose parent is a regular file (mkdir fails with ENOTDIR for any
// user). A full disk cannot be made without mounting a small filesystem (needs privileges),
// so ENOSPC is injected at the fs boundary by test/reliability/fault-preload.ts: the write
// stores part of its bytes and then fails with code ENOSPC, as write(2) does on a full disk.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../../src/errors';
import { train } from '../../src/jobs/train';
import { readCheckpointFiles, readCheckpointSidecar } from '../../src/runs/checkpoint';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig, tempDir } from '../helpers/configs';
import { installFsFaults } from './fault-preload';
import { contentSnapshot, exactMetrics, hasStackTrace, runCli, runDirsOf, snapshot, tinyYaml } from './cli';

const root = tempDir('ibrar-disk-');

test('a runs folder that cannot be created: exit 2 naming it, before training, nothing written', { timeout: 60_000 }, async () => {
  const blocker = path.join(root, 'not-a-folder');
  fs.writeFileSync(blocker, 'a regular file where a folder is needed\n');
  const cfg = path.join(root, 'unwritable.yaml');
  fs.writeFileSync(cfg, tinyYaml(path.join(blocker, 'runs')));
  const before = snapshot(root);
  const res = await runCli(['train', '--config', cfg]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, new RegExp(`ibrar: ${path.join(blocker, 'runs', 'tiny').replace(/[.]/g, '\\.')}: cannot create the runs folder \\(ENOTDIR`));
  assert.doesNotMatch(res.stderr, /run dir:|epoch 1/, 'reported before training starts');
  assert.ok(!hasStackTrace(res.stderr));
  assert.deepEqual([...snapshot(root).keys()], [...before.keys()]);
});

test('--resume of a run dir that is a file: exit 2', { timeout: 30_000 }, async () => {
  const res = await runCli(['train', '--resume', path.join(root, 'not-a-folder')]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /not a run directory \(a file, not a folder\)/);
});

const base = { train: { epochs: 3, checkpointEvery: 3 } };
let reference: ReturnType<typeof exactMetrics>;

test('reference: uninterrupted in-process run', async () => {
  const res = await train({ cfg: tinyConfig(base) });
  reference = exactMetrics(res.runDir);
});

// Which write hits the full disk: the weights, the optimizer slots, or the sidecar (the commit point).
const WHICH: Array<[string, RegExp]> = [
  ['weights file', /^\.last\.[0-9a-f]{12}\.safetensors\./],
  ['optimizer file', /^\.last\.[0-9a-f]{12}\.optim\.safetensors\./],
  ['sidecar (commit point)', /^\.last\.json\./],
];

for (const [what, pattern] of WHICH) {
  test(`ENOSPC while writing the ${what}: clear error, previous checkpoint intact, resume exact`, async () => {
    const cfg = tinyConfig(base);
    let armed = false;
    const faults = installFsFaults({ dir: cfg.runsDir, failWrite: (file) => armed && pattern.test(path.basename(file)) });
    let runDir = '';
    try {
      await assert.rejects(
        train({
          cfg,
          progress: {
            onStart: (i) => void (runDir = i.runDir),
            // Fill the disk once epoch 1 is safely checkpointed.
            onEpochEnd: () => void (armed = true),
          },
        }),
        (e: unknown) => {
          assert.ok(e instanceof UserError, String(e));
          assert.equal(e.file, runLayout(runDir).checkpoints);
          assert.match(e.message, /cannot write checkpoint 'last' \(ENOSPC: no space left on device, write\)/);
          assert.ok(e.message.includes(`the previous checkpoint ${path.join(runLayout(runDir).checkpoints, 'last.json')} is intact`), e.message);
          assert.ok(e.message.includes(`ibrar train --resume ${runDir}`), e.message);
          return true;
        },
      );
    } finally {
      faults.uninstall();
    }
    const dir = runLayout(runDir).checkpoints;
    const ck = readCheckpointSidecar(dir, 'last');
    assert.deepEqual([ck.epoch, ck.step], [1, 0], 'last is still the end-of-epoch-1 checkpoint');
    assert.doesNotThrow(() => readCheckpointFiles(dir, 'last'));
    assert.doesNotThrow(() => readCheckpointFiles(dir, 'best'));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'the torn temp file was removed');
    assert.ok(!fs.existsSync(runLayout(runDir).lock), 'the lock was released');

    const resumed = await train({ resumeDir: runDir });
    assert.equal(resumed.interrupted, false);
    assert.deepEqual(exactMetrics(runDir), reference);
  });
}

test('ENOSPC while appending metrics: a clear error naming metrics.jsonl, the checkpoint before it intact', async () => {
  const cfg = tinyConfig(base);
  let epochs = 0;
  const faults = installFsFaults({ dir: cfg.runsDir, failWrite: (file) => epochs >= 1 && path.basename(file) === 'metrics.jsonl' });
  let runDir = '';
  try {
    await assert.rejects(
      train({ cfg, progress: { onStart: (i) => void (runDir = i.runDir), onEpochEnd: () => void epochs++ } }),
      (e: unknown) => {
        assert.ok(e instanceof UserError, String(e));
        assert.equal(e.file, runLayout(runDir).metricsJsonl);
        assert.match(e.message, /ENOSPC: no space left on device, write; the last checkpoint is intact/);
        return true;
      },
    );
  } finally {
    faults.uninstall();
  }
  const ck = readCheckpointSidecar(runLayout(runDir).checkpoints, 'last');
  assert.deepEqual([ck.epoch, ck.step], [1, 7], 'the last mid-epoch checkpoint of epoch 2 (global step 15, every 3) is the last one');
  const resumed = await train({ resumeDir: runDir });
  assert.equal(resumed.interrupted, false);
  assert.deepEqual(exactMetrics(runDir), reference, 'the torn metrics line was dropped and the epoch redone');
});

test('ENOSPC through the CLI: exit 2, one message, no stack trace', { timeout: 60_000 }, async () => {
  const runs = path.join(root, 'cli-enospc');
  const cfg = path.join(root, 'cli-enospc.yaml');
  fs.writeFileSync(cfg, tinyYaml(runs, { train: 'checkpointEvery: 2' }));
  // The first checkpoint (weights, optimizer, sidecar: 3 writes) succeeds, the second fails.
  const res = await runCli(['train', '--config', cfg], { faults: true, env: { IBRAR_FAULT_DIR: runs, IBRAR_FAULT_ENOSPC_FROM: '4' } });
  assert.equal(res.code, 2, res.stderr);
  const [runDir] = runDirsOf(runs);
  assert.match(res.stderr, /ibrar: \S+checkpoints: cannot write checkpoint 'last' \(ENOSPC: no space left on device, write\); the previous checkpoint \S+last\.json is intact/);
  assert.ok(!hasStackTrace(res.stderr));
  const ck = readCheckpointSidecar(runLayout(runDir).checkpoints, 'last');
  assert.deepEqual([ck.epoch, ck.step], [0, 2]);
  const resumed = await runCli(['train', '--resume', runDir]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(exactMetrics(runDir).length, 3);
});

// ------------------------------------------------------------------ evaluation

let evalRun = '';

test('setup: a trained run to evaluate', { timeout: 180_000 }, async () => {
  evalRun = (await train({ cfg: tinyConfig({ backend: 'cpu', train: { epochs: 1 } }) })).runDir;
});

const EVAL_ARGS = ['--attacks', 'fgsm', '--n', '32', '--batch-size', '16'];

/** A copy of the trained run; everything but eval/ must stay byte-identical whatever the eval hits. */
function evalCopy(name: string): { run: string; before: Map<string, string> } {
  const run = path.join(root, name);
  fs.cpSync(evalRun, run, { recursive: true });
  return { run, before: outsideEval(run) };
}

// A finished evaluation also adds its numbers to the run's TensorBoard events (tb/, an event
// file of its own); everything else outside eval/ must stay as it was.
function outsideEval(run: string): Map<string, string> {
  return new Map([...contentSnapshot(run)].filter(([k]) => !k.startsWith('eval' + path.sep) && !k.startsWith('tb' + path.sep)));
}

const tempFiles = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')) : []);

test('eval: ENOSPC on the evaluation state: exit 2, one message, no temp file, nothing else changed', { timeout: 60_000 }, async () => {
  const { run, before } = evalCopy('eval-enospc-state');
  const res = await runCli(['eval', '--run', run, ...EVAL_ARGS], { faults: true, env: { IBRAR_FAULT_DIR: run, IBRAR_FAULT_ENOSPC_IN: 'eval', IBRAR_FAULT_ENOSPC_FROM: '1' } });
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, new RegExp(`^ibrar: ${runLayout(run).evalDir.replace(/[.]/g, '\\.')}: cannot save the evaluation state \\(ENOSPC\\); free space or fix the folder, then run the same command again\\n$`, 'm'));
  assert.ok(!hasStackTrace(res.stderr));
  assert.deepEqual(tempFiles(runLayout(run).evalDir), []);
  assert.deepEqual(outsideEval(run), before);
});

test('eval: ENOSPC on the report: exit 2 keeping the results; the same command then finishes without recomputing', { timeout: 90_000 }, async () => {
  const { run, before } = evalCopy('eval-enospc-report');
  const res = await runCli(['eval', '--run', run, ...EVAL_ARGS], {
    faults: true,
    env: { IBRAR_FAULT_DIR: run, IBRAR_FAULT_ENOSPC_IN: 'eval', IBRAR_FAULT_ENOSPC_MATCH: '^\\.\\d{8}-\\d{6}(-\\d+)?\\.json\\.' },
  });
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /: cannot write the evaluation report \(ENOSPC\); the results are kept in the state file: free space, then run the same command again\n/);
  assert.ok(!hasStackTrace(res.stderr));
  assert.deepEqual(tempFiles(runLayout(run).evalDir), []);
  const again = await runCli(['eval', '--run', run, ...EVAL_ARGS]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr + again.stdout, /resum|2\/2|32\/32/i);
  assert.equal(fs.readdirSync(runLayout(run).evalDir).filter((f) => /^\d{8}-\d{6}(-\d+)?\.json$/.test(f)).length, 1);
  assert.deepEqual(outsideEval(run), before);
});

test('eval: a read-only run folder: exit 2 naming the eval folder, nothing written (eval/ present or not)', { timeout: 90_000 }, async () => {
  for (const missingEvalDir of [false, true]) {
    const { run } = evalCopy(`eval-readonly-${missingEvalDir}`);
    if (missingEvalDir) fs.rmSync(runLayout(run).evalDir, { recursive: true });
    const all = contentSnapshot(run);
    const res = await runCli(['eval', '--run', run, ...EVAL_ARGS], { faults: true, env: { IBRAR_FAULT_DIR: run, IBRAR_FAULT_READONLY: '1' } });
    assert.equal(res.code, 2, res.stderr);
    const what = missingEvalDir ? 'cannot use the evaluation folder \\(EROFS\\)' : 'cannot save the evaluation state \\(EROFS\\)';
    assert.match(res.stderr, new RegExp(`^ibrar: ${runLayout(run).evalDir.replace(/[.]/g, '\\.')}: ${what}`, 'm'));
    assert.ok(!hasStackTrace(res.stderr));
    assert.deepEqual(contentSnapshot(run), all);
  }
});
