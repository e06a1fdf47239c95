// SIGINT / SIGTERM during training and evaluation, sent to the real CLI in a child process:
// the current step (or batch) finishes, a checkpoint (or the evaluation state) is written, the
// way to continue is printed, the exit code is 130 / 143, and continuing gives exactly the
// result of an uninterrupted run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { readCheckpointFiles, readCheckpointSidecar } from '../../src/runs/checkpoint';
import { runLayout } from '../../src/runs/run-dir';
import { tempDir } from '../helpers/configs';
import { exactMetrics, runCli, runDirsOf, spawnCli, tinyYaml } from './cli';

const root = tempDir('ibrar-signals-');
// 6 epochs of 16 steps: long enough (several seconds) that a signal sent when training starts
// lands mid-run.
const yaml = (runs: string, train?: string) => tinyYaml(runs, { epochs: 6, trainSize: 256, train });

async function trainedRun(name: string): Promise<string> {
  const runs = path.join(root, name);
  const cfg = path.join(root, `${name}.yaml`);
  fs.writeFileSync(cfg, yaml(runs));
  const res = await runCli(['train', '--config', cfg]);
  assert.equal(res.code, 0, res.stderr);
  return runDirsOf(runs)[0];
}

function reportOf(stdout: string): { file: string; clean: number; attacks: Array<[string, number]> } {
  const file = /wrote (\S+\.json)/.exec(stdout)?.[1];
  assert.ok(file, `a report was written:\n${stdout}`);
  const r = JSON.parse(fs.readFileSync(file, 'utf8'));
  return { file, clean: r.clean_acc, attacks: r.attacks.map((a: { attack: string; robust_acc: number }) => [a.attack, a.robust_acc]) };
}

let reference: string;

test('reference: an uninterrupted run', { timeout: 60_000 }, async () => {
  reference = await trainedRun('ref');
  assert.equal(exactMetrics(reference).length, 6);
});

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig} during training: checkpoint, resume hint, exit ${sig === 'SIGINT' ? 130 : 143}; --resume matches the uninterrupted run`, { timeout: 60_000 }, async () => {
    const runs = path.join(root, sig);
    const cfg = path.join(root, `${sig}.yaml`);
    fs.writeFileSync(cfg, yaml(runs));
    const child = spawnCli(['train', '--config', cfg]);
    const line = await child.waitFor(/run dir: (\S+)/);
    const runDir = line.slice('run dir: '.length);
    child.child.kill(sig);
    const res = await child.done;
    assert.equal(res.code, sig === 'SIGINT' ? 130 : 143, res.stderr);
    assert.match(res.stderr, new RegExp(`${sig}: finishing the current step and writing a checkpoint`));
    assert.ok(res.stderr.includes(`Resume with:\n  npx ibrar train --resume ${runDir}`), res.stderr);
    const ck = readCheckpointSidecar(runLayout(runDir).checkpoints, 'last');
    assert.ok(ck.epoch < 6, `stopped early (epoch ${ck.epoch}, step ${ck.step})`);
    assert.doesNotThrow(() => readCheckpointFiles(runLayout(runDir).checkpoints, 'last'));
    assert.ok(!fs.existsSync(runLayout(runDir).lock), 'the lock is released');

    const resumed = await runCli(['train', '--resume', runDir]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(exactMetrics(runDir), exactMetrics(reference));
    assert.equal(
      readCheckpointSidecar(runLayout(runDir).checkpoints, 'last').files.weights.sha256,
      readCheckpointSidecar(runLayout(reference).checkpoints, 'last').files.weights.sha256,
      'final weights bit-identical',
    );
  });
}

test('a second SIGINT exits at once with 130 and the last checkpoint stays loadable', { timeout: 60_000 }, async () => {
  const runs = path.join(root, 'twice');
  const cfg = path.join(root, 'twice.yaml');
  fs.writeFileSync(cfg, yaml(runs, 'checkpointEvery: 1'));
  const child = spawnCli(['train', '--config', cfg]);
  const runDir = (await child.waitFor(/run dir: (\S+)/)).slice('run dir: '.length);
  child.child.kill('SIGINT');
  // Standard signals do not queue: wait until the first one is taken before sending another.
  await child.waitFor(/SIGINT: finishing the current step/);
  child.child.kill('SIGINT');
  const res = await child.done;
  assert.equal(res.code, 130, res.stderr);
  const dir = runLayout(runDir).checkpoints;
  if (fs.existsSync(path.join(dir, 'last.json'))) assert.doesNotThrow(() => readCheckpointFiles(dir, 'last'));
  const resumed = await runCli(['train', '--resume', runDir]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(exactMetrics(runDir), exactMetrics(reference));
});

test('SIGTERM during `ibrar eval`: state saved, exit 143; the same command continues to the same report', { timeout: 90_000 }, async () => {
  const args = ['eval', '--run', reference, '--attacks', 'fgsm,pgd', '--eps', '0.1', '--steps', '10', '--n', '64', '--batch-size', '2', '--no-diagnose'];
  const full = await runCli(args);
  assert.equal(full.code, 0, full.stderr);
  const want = reportOf(full.stdout);

  // --fresh: the identical evaluation above would otherwise be reused as it is.
  const child = spawnCli([...args, '--fresh']);
  await child.waitFor(/evaluating 64 test examples/);
  child.child.kill('SIGTERM');
  const res = await child.done;
  assert.equal(res.code, 143, res.stderr);
  const m = /interrupted after (\d+)\/64 examples; run the same command again to continue/.exec(res.stderr);
  assert.ok(m, res.stderr);
  assert.ok(Number(m[1]) < 64);
  const states = fs.readdirSync(runLayout(reference).evalDir).filter((f) => f.startsWith('.state-'));
  assert.equal(states.length, 1, 'the evaluation state is on disk');

  const again = await runCli([...args, '--fresh']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`resuming after ${Number(m[1]) / 2} finished batches`));
  const got = reportOf(again.stdout);
  assert.deepEqual({ ...got, file: '' }, { ...want, file: '' });
  assert.deepEqual(fs.readdirSync(runLayout(reference).evalDir).filter((f) => f.startsWith('.state-')), [], 'state removed once done');
});

test('SIGTERM during the evaluation that ends `ibrar train`: exit 143 and `train --resume` finishes it', { timeout: 90_000 }, async () => {
  const runs = path.join(root, 'train-eval');
  const cfg = path.join(root, 'train-eval.yaml');
  fs.writeFileSync(cfg, tinyYaml(runs, { epochs: 1, extra: 'eval: {attacks: [pgd], eps: 0.1, steps: 10, n: 256, batchSize: 4}' }).replace('testSize: 64', 'testSize: 256'));
  const child = spawnCli(['train', '--config', cfg, '--no-diagnose']);
  await child.waitFor(/evaluating 256 test examples/);
  child.child.kill('SIGTERM');
  const res = await child.done;
  assert.equal(res.code, 143, res.stderr);
  const [runDir] = runDirsOf(runs);
  assert.ok(res.stderr.includes(`Continue with:\n  npx ibrar train --resume ${runDir}`), res.stderr);
  const again = await runCli(['train', '--resume', runDir, '--no-diagnose']);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /resuming after \d+ finished batches/);
  assert.equal(exactMetrics(runDir).length, 1, 'training was not repeated');
  assert.ok(reportOf(again.stdout).attacks[0][0] === 'pgd');
});
