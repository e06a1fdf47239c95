import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import { createRunDir, createStampedDir, latestRunDir, listRunDirs, runLayout, runTimestamp } from '../../src/runs/run-dir';
import { UserError } from '../../src/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-rundir-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const AT = new Date(2024, 0, 2, 3, 4, 5); // local time 2024-01-02 03:04:05

test('timestamp is local YYYYMMDD-HHMMSS, zero-padded', () => {
  assert.equal(runTimestamp(AT), '20240102-030405');
  assert.equal(runTimestamp(new Date(1999, 11, 31, 23, 59, 59)), '19991231-235959');
});

test('run dirs in the same second get -2, -3 …, never reuse a directory, and have the layout', () => {
  const root = path.join(tmp, 'a');
  const d1 = createRunDir(root, 'exp', AT);
  const d2 = createRunDir(root, 'exp', AT);
  const d3 = createRunDir(root, 'exp', AT);
  assert.equal(d1, path.join(root, 'exp', '20240102-030405'));
  assert.equal(d2, path.join(root, 'exp', '20240102-030405-2'));
  assert.equal(d3, path.join(root, 'exp', '20240102-030405-3'));
  for (const sub of ['checkpoints', 'eval', 'figures']) assert.ok(fs.statSync(path.join(d1, sub)).isDirectory());
  const l = runLayout(d1);
  assert.deepEqual(
    [l.dir, l.config, l.metricsJsonl, l.metricsCsv, l.log, l.checkpoints, l.evalDir, l.figures, l.lock].map((p) => path.relative(d1, p)),
    ['', 'config.yaml', 'metrics.jsonl', 'metrics.csv', 'log.jsonl', 'checkpoints', 'eval', 'figures', '.lock'],
  );
});

test('sweep and probe folders come from the same stamped-folder maker: -2 in the same second, a file as parent is a UserError', () => {
  const parent = path.join(tmp, 'x-sweep');
  const a = createStampedDir(parent, 'sweep folder', AT);
  const b = createStampedDir(parent, 'sweep folder', AT);
  assert.deepEqual([path.basename(a), path.basename(b)], ['20240102-030405', '20240102-030405-2']);
  assert.deepEqual(fs.readdirSync(a), [], 'empty: no run subfolders in a sweep folder');
  const file = path.join(tmp, 'not-a-folder');
  fs.writeFileSync(file, '');
  assert.throws(() => createStampedDir(path.join(file, 'p-probe'), 'probe folder', AT), (e: unknown) => e instanceof UserError);
});

test('listRunDirs sorts by time then suffix numerically; latestRunDir', () => {
  const root = path.join(tmp, 'b');
  const made = [];
  for (let i = 0; i < 11; i++) made.push(createRunDir(root, 'exp', AT));
  made.push(createRunDir(root, 'exp', new Date(2024, 0, 2, 3, 4, 6)));
  made.unshift(createRunDir(root, 'exp', new Date(2023, 5, 1, 0, 0, 0)));
  fs.mkdirSync(path.join(root, 'exp', 'not-a-run'));
  assert.deepEqual(listRunDirs(root, 'exp'), made);
  assert.equal(path.basename(made[11]), '20240102-030405-11');
  assert.equal(latestRunDir(root, 'exp'), made[made.length - 1]);
  assert.equal(latestRunDir(root, 'none'), null);
});

test('two processes creating run dirs in the same second never share one', async () => {
  const root = path.join(tmp, 'c');
  const mod = path.join(__dirname, '..', '..', 'src', 'runs', 'run-dir.js');
  const script = `const { createRunDir } = require(${JSON.stringify(mod)});
    const out = [];
    for (let i = 0; i < 15; i++) out.push(createRunDir(${JSON.stringify(root)}, 'exp', new Date(2024, 0, 2, 3, 4, 5)));
    process.stdout.write(JSON.stringify(out));`;
  const run = () =>
    new Promise<string[]>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', script]);
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as string[]) : reject(new Error(`child exited ${code}`))));
    });
  const [a, b] = await Promise.all([run(), run()]);
  const all = [...a, ...b];
  assert.equal(new Set(all).size, 30);
  assert.equal(listRunDirs(root, 'exp').length, 30);
});

test('bad experiment names and unwritable runs roots are clear UserErrors', () => {
  for (const bad of ['a/b', '..', 'x y', '']) {
    assert.throws(() => createRunDir(tmp, bad, AT), (e: unknown) => e instanceof UserError && /experiment name must be/.test(e.message));
  }
  // A runs root that is a file: mkdir cannot succeed whoever runs the test.
  const file = path.join(tmp, 'plain-file');
  fs.writeFileSync(file, 'x');
  assert.throws(
    () => createRunDir(file, 'exp', AT),
    (e: unknown) => e instanceof UserError && /cannot create the runs folder/.test(e.message) && e.file === path.join(file, 'exp'),
  );
  if (process.getuid && process.getuid() !== 0) {
    const ro = path.join(tmp, 'readonly');
    fs.mkdirSync(ro, { mode: 0o500 });
    assert.throws(() => createRunDir(ro, 'exp', AT), (e: unknown) => e instanceof UserError && /runs folder/.test(e.message));
    fs.chmodSync(ro, 0o700);
  }
});
