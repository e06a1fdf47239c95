// A cell that fails is tried again `retries` times in one invocation, then reported as failed
// (exit 1) with its error in its own status file; the other cells are unaffected, and the next
// invocation tries the failed cell again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { readCellRecord, readSweepState } from '../../src/runs/sweep-files';
import { tempDir } from '../helpers/configs';
import { runCli } from '../reliability/cli';

test('a failing cell is retried a bounded number of times and reported; the others finish', { timeout: 120_000 }, async () => {
  const root = tempDir('ibrar-sweep-retry-');
  const empty = path.join(root, 'no-data');
  fs.mkdirSync(empty);
  const file = path.join(root, 'sweep.yaml');
  fs.writeFileSync(
    file,
    YAML.stringify({
      base: {
        name: 'tiny',
        backend: 'wasm',
        runsDir: path.join(root, 'runs'),
        data: { dataset: 'synthetic', root: empty, synthetic: { height: 8, width: 8, trainSize: 32, testSize: 32 } },
        model: { arch: 'small-cnn', width: 0.25 },
        train: { epochs: 1, batchSize: 32 },
      },
      // MNIST is valid in the schema but its files are not in `root`: that cell fails when it runs.
      axes: { 'data.dataset': ['synthetic', 'mnist'] },
      retries: 1,
    }),
  );
  const r = await runCli(['sweep', '--config', file, '--jobs', '1'], { timeoutMs: 100_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\[1\] tiny-mnist: failed, will retry/);
  assert.match(r.stderr, /\[1\] tiny-mnist: failed after/);
  assert.match(r.stderr, /1 cell\(s\) failed after 1 retry: tiny-mnist; run the same command again to retry them/);
  const dir = path.join(root, 'runs', 'tiny-sweep', fs.readdirSync(path.join(root, 'runs', 'tiny-sweep'))[0]);
  const state = readSweepState(dir)!;
  assert.deepEqual(state.cells.map((c) => [c.name, c.status]), [['tiny-synthetic', 'done'], ['tiny-mnist', 'failed']]);
  const rec = readCellRecord(dir, state.cells[1].id)!;
  assert.equal(rec.attempts, 2, 'tried once and retried once');
  assert.match(rec.error!, /mnist/i);
  assert.match(r.stdout, /\| 1 +\| tiny-mnist +\| failed \(.*\) +\| 2 /);
  // The next invocation leaves the finished cell alone and tries the failed one again.
  const again = await runCli(['sweep', '--config', file, '--jobs', '1'], { timeoutMs: 100_000 });
  assert.equal(again.code, 1);
  assert.match(again.stderr, /continuing \(1 done\)/);
  assert.doesNotMatch(again.stderr, /\[0\] tiny-synthetic/);
  assert.equal(readCellRecord(dir, state.cells[1].id)!.attempts, 4);
});
