// `ibrar runs ls` and `ibrar runs diff` on fake run directories (every status, evaluations at
// two budgets) and on real tiny runs, through the library and the CLI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { listRuns, formatRunList, formatDuration } from '../../src/report/runs-list';
import { diffRuns, formatDiff, diffMarkdown, flattenConfig } from '../../src/report/runs-diff';
import { train } from '../../src/jobs/train';
import { readMetrics } from '../../src/runs/metrics';
import { UserError } from '../../src/errors';
import { tinyConfig, tempDir } from '../helpers/configs';
import { runCli } from '../reliability/cli';
import { fakeEval, fakeRun } from './fake-runs';

function sidecar(runDir: string, epoch: number, step = 0, state: Record<string, unknown> = {}): void {
  // Only what `runs ls` reads from checkpoints/last.json: the position and the trainer state.
  fs.writeFileSync(path.join(runDir, 'checkpoints', 'last.json'), JSON.stringify({ format: 'ibrar-checkpoint/1', tag: 'last', epoch, step, state }));
}

function metrics(runDir: string, rows: Array<Record<string, number>>): void {
  fs.writeFileSync(path.join(runDir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r) + '\n').join(''));
}

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** One fake run per status, started a minute apart. */
function fixture(): { root: string; dirs: Record<string, string> } {
  const root = tempDir('ibrar-runs-ls-');
  const cfg = (name: string, extra: Record<string, unknown> = {}) => tinyConfig({ name, runsDir: root, train: { epochs: 2 }, ...extra });
  const dirs: Record<string, string> = {};
  // finished, evaluated three times: the newest at its own ε (0.03) is the one summarised.
  dirs.finished = fakeRun(root, cfg('alpha'), '20260101-120000');
  sidecar(dirs.finished, 2);
  metrics(dirs.finished, [{ epoch: 1, seconds: 10.5, test_acc: 0.5 }, { epoch: 2, seconds: 20.25, test_acc: 0.75 }]);
  fakeEval(dirs.finished, 'a.json', { clean: 0.5, attacks: { pgd: 0.25 }, createdAt: '2026-01-01T13:00:00.000Z' });
  fakeEval(dirs.finished, 'b.json', { clean: 0.75, attacks: { pgd: 0.5, fgsm: 0.625 }, createdAt: '2026-01-01T14:00:00.000Z' });
  fakeEval(dirs.finished, 'c.json', { clean: 0.75, attacks: { pgd: 0.125 }, eps: 0.1, createdAt: '2026-01-01T15:00:00.000Z' });
  // interrupted mid-epoch 2
  dirs.interrupted = fakeRun(root, cfg('bravo'), '20260101-120100');
  sidecar(dirs.interrupted, 1, 3);
  metrics(dirs.interrupted, [{ epoch: 1, seconds: 3 }]);
  // failed: the trainer's last log line
  dirs.failed = fakeRun(root, cfg('charlie'), '20260101-120200');
  sidecar(dirs.failed, 1);
  fs.writeFileSync(
    path.join(dirs.failed, 'log.jsonl'),
    '{"level":30,"msg":"session opened"}\n{"level":50,"time":"2026-01-01T12:03:00.000Z","err":"non-finite loss at epoch 2, step 5","epoch":2,"msg":"training failed"}\n',
  );
  fakeEval(dirs.failed, 'a.json', { clean: 0.25, attacks: { pgd: 0.0625 }, createdAt: '2026-01-01T13:00:00.000Z' });
  // running: its lock is held by this (live) process
  dirs.running = fakeRun(root, cfg('delta'), '20260101-120300');
  sidecar(dirs.running, 1);
  fs.writeFileSync(path.join(dirs.running, '.lock'), JSON.stringify({ pid: process.pid, host: os.hostname(), token: 'x', createdAt: '' }));
  // a stale lock (its process is gone) does not make a run running
  dirs.stale = fakeRun(root, cfg('echo'), '20260101-120400');
  sidecar(dirs.stale, 2);
  fs.writeFileSync(path.join(dirs.stale, '.lock'), JSON.stringify({ pid: deadPid(), host: os.hostname(), token: 'y', createdAt: '' }));
  fakeEval(dirs.stale, 'a.json', { clean: 0.875, attacks: { pgd: 0.375 }, createdAt: '2026-01-01T13:00:00.000Z' });
  // imported
  dirs.imported = fakeRun(root, cfg('foxtrot'), '20260101-120500');
  sidecar(dirs.imported, 2, 0, { imported: { source: '/x/model.safetensors', sha256: 'a'.repeat(64) } });
  fs.writeFileSync(path.join(dirs.imported, 'imported.json'), JSON.stringify({ format: 'ibrar-import/1', source: '/x/model.safetensors', sha256: 'a'.repeat(64) }));
  // killed before its first checkpoint
  dirs.empty = fakeRun(root, cfg('golf'), '20260101-120600');
  // a lock held on another host cannot be checked: shown as running, the host named
  dirs.remote = fakeRun(root, cfg('hotel'), '20260101-120700');
  fs.writeFileSync(path.join(dirs.remote, '.lock'), JSON.stringify({ pid: 1, host: `not-${os.hostname()}`, token: 'z', createdAt: '' }));
  return { root, dirs };
}

test('runs ls: status, epoch, newest evaluation at the run\'s own ε, wall time and start of every fake run', () => {
  const { root, dirs } = fixture();
  const runs = listRuns(root);
  assert.deepEqual(
    runs.map((r) => [r.name, r.status, r.epoch, r.step]),
    [
      ['alpha', 'finished', 2, 0],
      ['bravo', 'interrupted', 1, 3],
      ['charlie', 'failed', 1, 0],
      ['delta', 'running', 1, 0],
      ['echo', 'finished', 2, 0],
      ['foxtrot', 'imported', 2, 0],
      ['golf', 'interrupted', 0, 0],
      ['hotel', 'running', 0, 0],
    ],
  );
  const by = (name: string) => runs.find((r) => r.name === name)!;
  const alpha = by('alpha');
  assert.equal(alpha.dir, dirs.finished);
  assert.equal(alpha.run, path.join('alpha', '20260101-120000'));
  assert.equal(alpha.started, '2026-01-01T12:00:00');
  assert.equal(alpha.wallSeconds, 30.75);
  assert.equal(alpha.clean, 0.75, 'b.json: the newest at ε 0.03, not the later ε 0.1 sweep');
  assert.equal(alpha.robust, 0.5, 'its worst case');
  assert.deepEqual(alpha.attacks, { pgd: 0.5, fgsm: 0.625 });
  assert.equal(alpha.eval!.eps, '0.03');
  assert.equal(by('charlie').note, 'non-finite loss at epoch 2, step 5');
  assert.equal(by('delta').note, `pid ${process.pid}`);
  assert.equal(by('hotel').note, `pid 1 on not-${os.hostname()}`);
  assert.equal(by('foxtrot').note, 'from /x/model.safetensors');
  assert.equal(by('bravo').clean, null);

  assert.deepEqual(listRuns(root, 'clean').map((r) => r.name).slice(0, 4), ['echo', 'alpha', 'charlie', 'bravo'], 'best first, then runs without an evaluation');
  assert.deepEqual(listRuns(root, 'robust').map((r) => r.name).slice(0, 3), ['alpha', 'echo', 'charlie']);
  assert.deepEqual(listRuns(path.join(root, 'charlie')).map((r) => r.name), ['charlie'], 'runs/<name> lists that experiment');

  const text = formatRunList(runs).split('\n');
  assert.match(text[0], /^run\s+status\s+epoch\s+clean\s+robust\s+wall\s+started\s+note$/);
  assert.match(text[1], /^alpha\/20260101-120000\s+finished\s+2\/2\s+75\.00%\s+50\.00%\s+0:00:31\s+2026-01-01 12:00:00$/);
  assert.match(text[2], /bravo\/20260101-120100\s+interrupted\s+1\/2 \+3 steps\s+–\s+–/);
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatRunList([]), 'no runs\n');
});

test('runs ls / diff through the CLI: JSON, sorting, an empty folder, bad arguments', async () => {
  const { root, dirs } = fixture();
  const ls = await runCli(['runs', 'ls', root, '--json', '--sort', 'name']);
  assert.equal(ls.code, 0, ls.stderr);
  const parsed = JSON.parse(ls.stdout) as Array<{ name: string; status: string }>;
  assert.deepEqual(parsed.map((r) => r.name), ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel']);
  assert.equal(parsed[2].status, 'failed');
  const empty = await runCli(['runs', 'ls', tempDir('ibrar-runs-empty-')]);
  assert.equal(empty.code, 0, empty.stderr);
  assert.equal(empty.stdout, 'no runs\n');
  const missing = await runCli(['runs', 'ls', path.join(root, 'nope')]);
  assert.equal(missing.code, 2);
  const one = await runCli(['runs', 'diff', dirs.finished]);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /two or more run directories/);
  const md = await runCli(['runs', 'diff', dirs.finished, dirs.stale, '--md']);
  assert.equal(md.code, 0, md.stderr);
  assert.match(md.stdout, /^### config: 1 differing key\n\n\| key \| alpha\/20260101-120000 \| echo\/20260101-120400 \| Δ \|\n\| --- \| ---: \| ---: \| ---: \|\n\| name \| alpha \| echo \|  \|$/m);
  assert.match(md.stdout, /\| clean_acc \| 0\.75 \| 0\.875 \| \+0\.125 \|/);
  const json = await runCli(['runs', 'diff', dirs.finished, dirs.stale, '--json']);
  assert.equal(JSON.parse(json.stdout).config[0].key, 'name');
  const both = await runCli(['runs', 'diff', dirs.finished, dirs.stale, '--json', '--md']);
  assert.equal(both.code, 2);
});

test('runs diff: differing config keys as dotted paths, final metrics and newest evaluations side by side', () => {
  const root = tempDir('ibrar-runs-diff-');
  const a = fakeRun(root, tinyConfig({ name: 'exp', runsDir: root, train: { lr: 0.05 }, eval: { attacks: ['pgd'] } }), '20260101-000000');
  const b = fakeRun(root, tinyConfig({ name: 'exp', runsDir: root, seed: 4, train: { lr: 0.1 }, eval: { attacks: ['pgd', 'fgsm'] } }), '20260102-000000');
  metrics(a, [{ epoch: 1, test_acc: 0.5, ce: 1 }, { epoch: 2, test_acc: 0.75, ce: 0.5 }]);
  metrics(b, [{ epoch: 2, test_acc: 0.625, kl: 0.25 }]);
  fakeEval(a, 'x.json', { clean: 0.75, attacks: { pgd: 0.25 }, createdAt: '2026-01-01T01:00:00.000Z' });
  fakeEval(b, 'y.json', { clean: 0.625, attacks: { fgsm: 0.5, pgd: 0.375 }, createdAt: '2026-01-02T01:00:00.000Z' });
  const d = diffRuns([a, b]);
  assert.deepEqual(d.runs.map((r) => r.label), ['exp/20260101-000000', 'exp/20260102-000000']);
  assert.deepEqual(d.config, [
    { key: 'eval.attacks', values: ['["pgd"]', '["pgd","fgsm"]'] },
    { key: 'seed', values: [3, 4] },
    { key: 'train.lr', values: [0.05, 0.1] },
  ]);
  assert.deepEqual(d.metrics, [
    { key: 'epoch', values: [2, 2] },
    { key: 'test_acc', values: [0.75, 0.625] },
    { key: 'ce', values: [0.5, null] },
    { key: 'kl', values: [null, 0.25] },
  ]);
  const row = (k: string) => d.eval.find((r) => r.key === k)!.values;
  assert.deepEqual(row('file'), ['x.json', 'y.json']);
  assert.deepEqual(row('clean_acc'), [0.75, 0.625]);
  assert.deepEqual(row('pgd'), [0.25, 0.375]);
  assert.deepEqual(row('fgsm'), [null, 0.5]);
  assert.deepEqual(row('worst_case_acc'), [0.25, 0.375]);
  const text = formatDiff(d);
  assert.match(text, /^config: 3 differing keys\n\s+exp\/20260101-000000\s+exp\/20260102-000000\s+Δ\n/);
  assert.match(text, /train\.lr\s+0\.05\s+0\.1\s+\+0\.05\n/);
  assert.match(text, /kl\s+–\s+0\.25\n/);
  assert.match(diffMarkdown(d), /### newest evaluation/);
  // Three runs: no Δ column.
  const c = fakeRun(root, tinyConfig({ name: 'exp', runsDir: root }), '20260103-000000');
  assert.doesNotMatch(formatDiff(diffRuns([a, b, c])), /Δ/);
  assert.throws(() => diffRuns([a, root]), (e: unknown) => e instanceof UserError && /not a run directory/.test(e.message));
  assert.deepEqual(flattenConfig({ a: { b: 1, c: [1, 2], d: undefined, e: null } }), { 'a.b': 1, 'a.c': '[1,2]', 'a.e': null });
});

test('runs ls and diff on real tiny runs', async () => {
  const a = await train({ cfg: tinyConfig({ name: 'real', train: { epochs: 2 }, eval: { attacks: ['fgsm'], n: 64 } }) });
  const runsDir = path.dirname(path.dirname(a.runDir));
  const b = await train({ cfg: tinyConfig({ name: 'real', runsDir, train: { epochs: 1, lr: 0.02 } }) });
  const runs = listRuns(runsDir);
  assert.equal(runs.length, 2);
  const ra = runs.find((r) => r.dir === a.runDir)!;
  assert.equal(ra.status, 'finished');
  assert.equal(ra.epoch, 2);
  assert.equal(ra.clean, a.evaluation!.report!.clean_acc);
  assert.equal(ra.robust, a.evaluation!.report!.worst_case_acc);
  assert.equal(ra.wallSeconds, readMetrics(a.runDir).reduce((s, r) => s + (r.seconds as number), 0));
  assert.ok(ra.wallSeconds > 0);
  const d = diffRuns([a.runDir, b.runDir]);
  assert.deepEqual(
    d.config.map((r) => r.key),
    ['eval.attacks', 'eval.n', 'train.epochs', 'train.lr'],
  );
  assert.deepEqual(d.metrics.find((r) => r.key === 'test_acc')!.values, [a.records[1].test_acc, b.records[0].test_acc]);
  assert.deepEqual(d.eval.find((r) => r.key === 'fgsm')!.values, [a.evaluation!.report!.attacks[0].robust_acc, null]);
});
