// Two processes at once. Started from the same config at the same moment they get distinct
// run dirs and write no file in common (every path each one touches is traced); two
// processes resuming the same run dir are refused by the run lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runLayout } from '../../src/runs/run-dir';
import { tempDir } from '../helpers/configs';
import { exactMetrics, hasStackTrace, runCli, runDirsOf, spawnCli, tinyYaml } from './cli';

const root = tempDir('ibrar-concurrent-');

test('two runs of the same config at once: distinct run dirs, no file written by both, same results', { timeout: 90_000 }, async () => {
  const runs = path.join(root, 'same');
  const cfg = path.join(root, 'same.yaml');
  fs.writeFileSync(cfg, tinyYaml(runs, { train: 'checkpointEvery: 2' }));
  const traces = [path.join(root, 'trace-a'), path.join(root, 'trace-b')];
  const [a, b] = await Promise.all(traces.map((t) => runCli(['train', '--config', cfg], { faults: true, env: { IBRAR_FAULT_DIR: runs, IBRAR_FAULT_TRACE: t } })));
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const dirs = runDirsOf(runs);
  assert.equal(dirs.length, 2, `two run dirs: ${dirs.join(', ')}`);
  const dirA = /run dir: (\S+)/.exec(a.stderr)![1];
  const dirB = /run dir: (\S+)/.exec(b.stderr)![1];
  assert.notEqual(dirA, dirB);

  const [ta, tb] = traces.map((t) => new Set(fs.readFileSync(t, 'utf8').split('\n').filter(Boolean)));
  // The shared parent <runs>/tiny is created by mkdir -p (harmless when both do it).
  const parent = path.join(runs, 'tiny');
  const shared = [...ta].filter((p) => tb.has(p) && p !== parent && p !== runs);
  assert.deepEqual(shared, [], 'no path written by both processes');
  assert.ok([...ta].some((p) => p.endsWith('.tmp')), 'temp files were traced');
  for (const p of ta) if (p.startsWith(parent + path.sep)) assert.ok(p.startsWith(dirA), `A wrote only in its run dir: ${p}`);
  for (const p of tb) if (p.startsWith(parent + path.sep)) assert.ok(p.startsWith(dirB), `B wrote only in its run dir: ${p}`);

  assert.deepEqual(exactMetrics(dirA), exactMetrics(dirB), 'same config and seed, same results');
  assert.equal(exactMetrics(dirA).length, 3);
});

test('a second process cannot resume a run dir that is in use: exit 2 naming the holder', { timeout: 90_000 }, async () => {
  const runs = path.join(root, 'locked');
  const cfg = path.join(root, 'locked.yaml');
  // Long enough (~0.1 s per epoch with native kernels) that the holder is still training
  // when the second process, and then the SIGINT, arrive.
  const epochs = 60;
  fs.writeFileSync(cfg, tinyYaml(runs, { epochs, trainSize: 256 }));
  const first = spawnCli(['train', '--config', cfg]);
  const runDir = (await first.waitFor(/run dir: (\S+)/)).slice('run dir: '.length);
  const second = await runCli(['train', '--resume', runDir]);
  assert.equal(second.code, 2, second.stderr);
  assert.ok(
    second.stderr.includes(`ibrar: ${runLayout(runDir).lock}: the run directory is locked by pid ${first.child.pid} on this host`),
    second.stderr,
  );
  assert.ok(!hasStackTrace(second.stderr));
  first.child.kill('SIGINT');
  const res = await first.done;
  assert.equal(res.code, 130, res.stderr);
  // Once the holder is gone, resuming works.
  const third = await runCli(['train', '--resume', runDir]);
  assert.equal(third.code, 0, third.stderr);
  assert.equal(exactMetrics(runDir).length, epochs);
});

test('a lock left by a killed process does not block --resume', { timeout: 90_000 }, async () => {
  const runs = path.join(root, 'stale');
  const cfg = path.join(root, 'stale.yaml');
  const epochs = 60; // far from done when the first epoch's line appears
  fs.writeFileSync(cfg, tinyYaml(runs, { epochs, trainSize: 256, train: 'checkpointEvery: 4' }));
  const first = spawnCli(['train', '--config', cfg]);
  const runDir = (await first.waitFor(/run dir: (\S+)/)).slice('run dir: '.length);
  // Killed while it holds the lock: right after its first epoch (no clock involved).
  await first.waitFor(/epoch 1\/60/);
  first.child.kill('SIGKILL');
  await first.done;
  assert.ok(fs.existsSync(runLayout(runDir).lock), 'SIGKILL left the lock file');
  const again = await runCli(['train', '--resume', runDir]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(exactMetrics(runDir).length, epochs);
});
