// The local executor end to end, through the real CLI: a 4-cell sweep of a tiny synthetic
// config (ib.enabled × seed) run once uninterrupted, and once SIGKILLed — the driver process
// only, as `kill -9 PID` would — the moment the first checkpoint of any cell appears (a file
// event, not a wall-clock delay), then re-run with the same command. The re-run must continue
// the same sweep and finish with results identical to the uninterrupted sweep: per cell the
// final weights (SHA-256), every metrics column but timings, and the evaluation.
// Then reproducibility across processes: a cell's saved config.yaml, trained alone with
// `ibrar train --config` (and a different IBRAR_NATIVE_THREADS in its environment), gives
// bit-identical weights and the same numbers, because the run applies its recorded `threads`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { readCheckpointSidecar } from '../../src/runs/checkpoint';
import { readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { pidAlive } from '../../src/runs/atomic';
import { readCellRecord, readSweepState, type SweepState } from '../../src/runs/sweep-files';
import { loadConfig } from '../../src/config/load';
import { findRunDirs } from '../../src/report/runs';
import { tempDir } from '../helpers/configs';
import { tinySweepYaml } from '../helpers/sweeps';
import { runCli, spawnCli } from '../reliability/cli';

const sweepYaml = (runsDir: string) => tinySweepYaml(runsDir, { epochs: 3 });

function theSweep(runsDir: string): { dir: string; state: SweepState } {
  const parent = path.join(runsDir, 'tiny-sweep');
  const dirs = fs.existsSync(parent) ? fs.readdirSync(parent) : [];
  assert.equal(dirs.length, 1, `one sweep dir under ${parent}: ${dirs.join(', ')}`);
  const dir = path.join(parent, dirs[0]);
  return { dir, state: readSweepState(dir)! };
}

function runsOfCell(sweepDir: string, id: string, name: string): string[] {
  const p = path.join(sweepDir, 'cells', id, name);
  return fs.existsSync(p) ? fs.readdirSync(p).map((d) => path.join(p, d)) : [];
}

/** What must not differ between two runs of the same cell: everything but timings. */
function outcome(runDir: string) {
  const sidecar = readCheckpointSidecar(runLayout(runDir).checkpoints, 'last');
  const best = readCheckpointSidecar(runLayout(runDir).checkpoints, 'best');
  const evalDir = runLayout(runDir).evalDir;
  const reports = fs.readdirSync(evalDir).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
  assert.equal(reports.length, 1, `one evaluation in ${evalDir}`);
  const r = JSON.parse(fs.readFileSync(path.join(evalDir, reports[0]), 'utf8'));
  return {
    weights: sidecar.files.weights.sha256,
    optimizer: sidecar.files.optimizer?.sha256,
    best: best.files.weights.sha256,
    metrics: readMetrics(runDir).map(({ seconds: _s, images_per_sec: _i, ...rest }) => rest),
    eval: { n: r.n, clean: r.clean_acc, worst: r.worst_case_acc, attacks: r.attacks.map((a: { attack: string; robust_acc: number }) => [a.attack, a.robust_acc]) },
  };
}

/** The first `checkpoints/last.json` of any cell, or null. */
function firstCheckpoint(runsDir: string): string | null {
  const parent = path.join(runsDir, 'tiny-sweep');
  for (const s of fs.existsSync(parent) ? fs.readdirSync(parent) : []) {
    const cells = path.join(parent, s, 'cells');
    for (const id of fs.existsSync(cells) ? fs.readdirSync(cells) : []) {
      for (const name of fs.readdirSync(path.join(cells, id)).filter((n) => fs.statSync(path.join(cells, id, n)).isDirectory())) {
        for (const run of fs.readdirSync(path.join(cells, id, name))) {
          const f = path.join(cells, id, name, run, 'checkpoints', 'last.json');
          if (fs.existsSync(f)) return f;
        }
      }
    }
  }
  return null;
}

async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a local sweep SIGKILLed mid-run and re-run finishes with results identical to an uninterrupted sweep', { timeout: 300_000 }, async (t) => {
  const root = tempDir('ibrar-sweep-local-');
  const refRuns = path.join(root, 'ref');
  const killRuns = path.join(root, 'killed');
  fs.writeFileSync(path.join(root, 'ref.yaml'), sweepYaml(refRuns));
  fs.writeFileSync(path.join(root, 'killed.yaml'), sweepYaml(killRuns));

  let t0 = Date.now();
  const ref = await runCli(['sweep', '--config', path.join(root, 'ref.yaml'), '--jobs', '2'], { timeoutMs: 200_000 });
  assert.equal(ref.code, 0, ref.stderr);
  t.diagnostic(`uninterrupted 4-cell sweep, 2 workers: ${Date.now() - t0} ms`);
  const A = theSweep(refRuns);
  assert.equal(A.state.complete, true);
  assert.match(ref.stderr, /4 cells; 2 workers × \d+ native threads?/);

  // The killed sweep: SIGKILL the driver as soon as any cell has written its first checkpoint.
  t0 = Date.now();
  const first = spawnCli(['sweep', '--config', path.join(root, 'killed.yaml'), '--jobs', '2'], { timeoutMs: 200_000 });
  let exited = false;
  void first.done.then(() => (exited = true));
  await until(() => firstCheckpoint(killRuns) !== null || exited, 120_000, 'the first checkpoint of a cell');
  assert.equal(exited, false, `the sweep ended before any checkpoint appeared:\n${first.out().stderr}`);
  first.child.kill('SIGKILL');
  const killed = await first.done;
  assert.equal(killed.signal, 'SIGKILL');
  const B = theSweep(killRuns);
  // Its workers notice that their driver is gone and exit (no orphans training into the cells).
  const workers = B.state.cells.map((c) => c.workerPid).filter((p): p is number => p !== undefined);
  assert.ok(workers.length >= 1, 'the state records the running workers');
  await until(() => workers.every((p) => !pidAlive(p)), 30_000, `workers ${workers.join(', ')} to exit after their driver was killed`);
  const cut = B.state.cells.filter((c) => readCellRecord(B.dir, c.id)?.status !== 'done');
  assert.ok(cut.length >= 1, 'the kill left unfinished cells');
  const started = B.state.cells.filter((c) => runsOfCell(B.dir, c.id, c.name).length > 0);
  t.diagnostic(`killed after ${Date.now() - t0} ms: ${cut.length} cell(s) unfinished, ${started.length} with a run dir`);

  // The same command again continues that sweep (no --resume needed) and finishes it.
  t0 = Date.now();
  const again = await runCli(['sweep', '--config', path.join(root, 'killed.yaml'), '--jobs', '2'], { timeoutMs: 200_000 });
  assert.equal(again.code, 0, again.stderr);
  t.diagnostic(`re-run to the end: ${Date.now() - t0} ms`);
  assert.match(again.stderr, new RegExp(`sweep dir: ${B.dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n4 cells; continuing`));
  const B2 = theSweep(killRuns);
  assert.equal(B2.state.complete, true);
  assert.deepEqual(B2.state.cells.map((c) => c.id), A.state.cells.map((c) => c.id), 'the same cells (ids from the configs)');
  for (const c of B2.state.cells) {
    const mine = runsOfCell(B2.dir, c.id, c.name);
    const theirs = runsOfCell(A.dir, c.id, c.name);
    assert.equal(mine.length, 1, `cell ${c.name}: one run dir (an interrupted cell resumes its own): ${mine.join(', ')}`);
    assert.deepEqual(outcome(mine[0]), outcome(theirs[0]), `cell ${c.name} equals the uninterrupted sweep's`);
    const rec = readCellRecord(B2.dir, c.id)!;
    assert.equal(rec.status, 'done');
    assert.equal(rec.runDir, mine[0]);
    if (cut.some((x) => x.id === c.id) && started.some((x) => x.id === c.id)) assert.ok(rec.attempts >= 2, `cell ${c.name} was resumed (${rec.attempts} attempts)`);
  }
  // The aggregated tables: two rows (with and without IB), each the mean over seeds 0 and 1.
  const report = JSON.parse(fs.readFileSync(path.join(B2.dir, 'report', 'report.json'), 'utf8'));
  assert.deepEqual(report.rows.map((r: { label: string; seeds: number[] }) => [r.label, [...r.seeds].sort()]).sort(), [['tiny-ib', [0, 1]], ['tiny-no-ib', [0, 1]]]);
  // `ibrar report` finds the cells from any folder above them (here 7 levels up: root/killed/…).
  assert.equal(findRunDirs([B2.dir]).length, 4);
  assert.equal(findRunDirs([root]).length, 8);
  // Running it once more does nothing: every cell is done.
  const third = await runCli(['sweep', '--config', path.join(root, 'killed.yaml')], { timeoutMs: 60_000 });
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /every cell of this sweep was already done/);

  // A cell trained alone from its saved config equals the pool worker's run, bit for bit: the
  // run applies the recorded thread count, whatever IBRAR_NATIVE_THREADS says.
  const cell = A.state.cells[3];
  const [cellRun] = runsOfCell(A.dir, cell.id, cell.name);
  const saved = loadConfig(runLayout(cellRun).config);
  assert.equal(saved.threads, A.state.threads, 'the cell config records the sweep’s thread count');
  const alone = path.join(root, 'alone');
  t0 = Date.now();
  const solo = await runCli(['train', '--config', runLayout(cellRun).config, '--set', `runsDir=${alone}`], {
    env: { IBRAR_NATIVE_THREADS: String(saved.threads === 1 ? 2 : 1) },
    timeoutMs: 120_000,
  });
  assert.equal(solo.code, 0, solo.stderr);
  t.diagnostic(`the same cell alone with ibrar train: ${Date.now() - t0} ms`);
  const soloRun = path.join(alone, cell.name, fs.readdirSync(path.join(alone, cell.name))[0]);
  assert.deepEqual(outcome(soloRun), outcome(cellRun));
  const opened = JSON.parse(fs.readFileSync(runLayout(soloRun).log, 'utf8').split('\n')[0]);
  if (opened.backend?.native?.loaded) {
    assert.match(opened.backend.native.runtime, new RegExp(`; ${saved.threads} threads?$`), 'the native kernels ran with the recorded thread count');
  }
});
