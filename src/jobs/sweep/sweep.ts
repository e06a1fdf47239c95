// `ibrar sweep`: a grid of experiment configs run as one unit. Layout:
//   <runsDir>/<name>-sweep/<YYYYMMDD-HHMMSS>/
//     sweep.yaml  sweep-state.json  report/ (aggregated tables, when finished)
//     cells/<id>/cell.yaml  cells/<id>/cell.json  cells/<id>/worker.log (local)
//     cells/<id>/<cell name>/<YYYYMMDD-HHMMSS>/   the cell's run: an ordinary run dir
//     slurm/   (Slurm executor) cells.sbatch, report.sbatch, submissions.json, logs/
// Re-running the same command (same expanded grid, same executor) continues the newest such
// sweep: finished cells are kept, interrupted ones resume from their checkpoints, failed ones are
// tried again (`retries` times per invocation). `--fresh` starts a new sweep.
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { configToYaml } from '../../config/load';
import { UserError } from '../../errors';
import { pidAlive, writeFileAtomic } from '../../runs/atomic';
import { acquireRunLock } from '../../runs/lock';
import { createStampedDir, listRunDirs } from '../../runs/run-dir';
import {
  SWEEP_DEF_FILE,
  cellConfigPath,
  cellDir,
  readCellRecord,
  readSweepState,
  syncSweepState,
  writeCellRecord,
  writeSweepState,
  type SweepCellEntry,
  type SweepState,
} from '../../runs/sweep-files';
import { availableCores, planThreads, runPool } from '../pool';
import { writeReport } from '../../report/report';
import { expandGrid, gridHash, type ExpandedGrid, type LoadedSweep } from './grid';

export type Executor = 'local' | 'slurm';

export interface SweepCounts {
  total: number;
  done: number;
  running: number;
  failed: number;
  pending: number;
  /** Seconds until the sweep is done, from the cells finished in this invocation (null before the first). */
  etaSeconds: number | null;
}

export interface SweepProgress {
  onStart?(info: { sweepDir: string; resumed: boolean; cells: SweepCellEntry[]; jobs: number; threads: number }): void;
  onCellStart?(cell: SweepCellEntry, attempt: number): void;
  onCellEnd?(cell: SweepCellEntry, outcome: 'done' | 'interrupted' | 'failed' | 'retry', seconds: number, counts: SweepCounts): void;
  onTick?(counts: SweepCounts): void;
  onNote?(message: string): void;
}

export interface SweepPlan {
  grid: ExpandedGrid;
  executor: Executor;
  /** Native threads of every cell. */
  threads: number;
  /** Local worker processes (1 for Slurm: the scheduler decides). */
  jobs: number;
  cores: number;
}

/** The grid and how it will run: threads per cell, workers. Throws on invalid cells (all of them listed). */
export function planSweep(loaded: LoadedSweep, opts: { executor?: Executor; jobs?: number; cores?: number } = {}): SweepPlan {
  const grid = expandGrid(loaded);
  const executor = opts.executor ?? loaded.sweep.executor;
  const cores = opts.cores ?? availableCores();
  if (executor === 'slurm') return { grid, executor, threads: loaded.sweep.threads ?? loaded.sweep.slurm.cpusPerTask, jobs: 1, cores };
  if (loaded.sweep.threads !== undefined) {
    const threads = loaded.sweep.threads;
    return { grid, executor, threads, jobs: opts.jobs ?? Math.max(1, Math.min(grid.cells.length, Math.floor(cores / threads))), cores };
  }
  const plan = planThreads(cores, { jobs: opts.jobs, tasks: grid.cells.length });
  return { grid, executor, threads: plan.threads, jobs: plan.jobs, cores };
}

function newSweepDir(runsDir: string, name: string): string {
  return path.resolve(createStampedDir(path.join(runsDir, `${name}-sweep`), 'sweep folder'));
}

/** The newest sweep of this grid and executor, or null. */
export function findSweep(loaded: LoadedSweep, hash: string): string | null {
  for (const dir of listRunDirs(loaded.runsDir, `${loaded.name}-sweep`).reverse()) {
    const st = readSweepState(dir);
    if (st && st.gridHash === hash) return path.resolve(dir);
  }
  return null;
}

/**
 * The sweep directory for this plan: the newest one of the same grid (unless `fresh`), else a
 * new one with every cell's config written (runsDir = its cell folder, threads recorded).
 */
export function openSweep(loaded: LoadedSweep, plan: SweepPlan, opts: { fresh?: boolean } = {}): { sweepDir: string; state: SweepState; resumed: boolean } {
  const hash = gridHash(loaded, plan.grid, plan.executor);
  const existing = opts.fresh ? null : findSweep(loaded, hash);
  if (existing) return { sweepDir: existing, state: syncSweepState(existing, readSweepState(existing)!), resumed: true };
  const sweepDir = newSweepDir(loaded.runsDir, loaded.name);
  const { base: _base, ...rest } = loaded.sweep;
  void _base;
  writeFileAtomic(path.join(sweepDir, SWEEP_DEF_FILE), YAML.stringify({ ...rest, name: loaded.name, base: loaded.baseDoc, executor: plan.executor }, { lineWidth: 0 }));
  for (const c of plan.grid.cells) {
    fs.mkdirSync(cellDir(sweepDir, c.id), { recursive: true });
    writeFileAtomic(cellConfigPath(sweepDir, c.id), configToYaml({ ...c.config, runsDir: cellDir(sweepDir, c.id), threads: plan.threads }));
  }
  const now = new Date().toISOString();
  const s = loaded.sweep;
  const state: SweepState = {
    format: 'ibrar-sweep-state/1',
    name: loaded.name,
    gridHash: hash,
    executor: plan.executor,
    threads: plan.threads,
    columns: plan.grid.columns,
    diagnose: s.diagnose,
    surrogate: s.surrogate,
    diagnoseN: s.diagnoseN,
    retries: s.retries,
    createdAt: now,
    updatedAt: now,
    complete: false,
    cells: plan.grid.cells.map((c) => ({ index: c.index, id: c.id, name: c.name, values: c.values, origin: c.origin, status: 'pending', attempts: 0 })),
  };
  // Written last: a folder without it is never taken for a sweep to continue.
  writeSweepState(sweepDir, state);
  return { sweepDir, state, resumed: false };
}

export function sweepCounts(state: SweepState, durations: number[], jobs: number): SweepCounts {
  const by = (s: string) => state.cells.filter((c) => c.status === s).length;
  const done = by('done');
  const running = by('running');
  const failed = by('failed');
  const pending = state.cells.length - done - running - failed;
  const mean = durations.length ? durations.reduce((a, b) => a + b, 0) / durations.length : null;
  const left = pending + running;
  return { total: state.cells.length, done, running, failed, pending, etaSeconds: mean === null ? null : (mean * left) / Math.max(1, Math.min(jobs, left || 1)) };
}

function isOurWorker(pid: number, sweepDir: string): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(sweepDir);
  } catch {
    return false;
  }
}

/** Workers of a killed driver exit when they notice; wait for them (bounded), then kill what is left. */
async function waitForOrphans(sweepDir: string, state: SweepState, note: (m: string) => void): Promise<void> {
  const pids = state.cells.map((c) => c.workerPid).filter((p): p is number => p !== undefined && pidAlive(p) && isOurWorker(p, sweepDir));
  if (pids.length === 0) return;
  note(`waiting for ${pids.length} worker(s) of an earlier driver to exit (pid ${pids.join(', ')})`);
  const deadline = Date.now() + 30_000;
  while (pids.some((p) => pidAlive(p) && isOurWorker(p, sweepDir)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  for (const p of pids) if (pidAlive(p) && isOurWorker(p, sweepDir)) process.kill(p, 'SIGKILL');
}

export interface LocalSweepOutcome {
  sweepDir: string;
  state: SweepState;
  interrupted: boolean;
  /** Cells that failed every try in this invocation. */
  failed: string[];
  /** Cells started in this invocation. */
  ran: number;
}

/** Runs the unfinished cells of a sweep on the local pool. */
export async function runLocalSweep(
  sweepDir: string,
  opts: { jobs: number; cores?: number; resumed?: boolean; progress?: SweepProgress; shouldStop?: () => boolean; cliPath?: string },
): Promise<LocalSweepOutcome> {
  const lock = acquireRunLock({ lock: path.join(sweepDir, '.lock') });
  try {
    const note = (m: string) => opts.progress?.onNote?.(m);
    let state = readSweepState(sweepDir);
    if (!state) throw new UserError('not a sweep directory (sweep-state.json missing)', sweepDir);
    await waitForOrphans(sweepDir, state, note);
    state = syncSweepState(sweepDir, state);
    for (const c of state.cells) c.workerPid = undefined;
    const cores = opts.cores ?? availableCores();
    if (opts.jobs * state.threads > cores) note(`${opts.jobs} workers × ${state.threads} threads (recorded in the sweep) exceed the ${cores} cores here`);
    const queue = state.cells.filter((c) => c.status !== 'done').map((c) => c.index);
    const failures = new Map<number, number>();
    const started = new Map<number, number>();
    const durations: number[] = [];
    const failed: string[] = [];
    let interrupted = false;
    let ran = 0;
    const entry = (i: number) => state!.cells.find((c) => c.index === i)!;
    // The cells' own records win, except that a cell handed to a worker is running until it ends.
    const sync = () => {
      syncSweepState(sweepDir, state!);
      for (const i of started.keys()) entry(i).status = 'running';
    };
    opts.progress?.onStart?.({ sweepDir, resumed: Boolean(opts.resumed), cells: state.cells, jobs: opts.jobs, threads: state.threads });
    const counts = () => sweepCounts(state!, durations, opts.jobs);
    const { stopped } = await runPool({
      jobs: opts.jobs,
      threads: state.threads,
      cliPath: opts.cliPath,
      shouldStop: opts.shouldStop,
      next: () => {
        const i = queue.shift();
        if (i === undefined) return null;
        const c = entry(i);
        c.status = 'running';
        started.set(i, Date.now());
        ran++;
        opts.progress?.onCellStart?.(c, (failures.get(i) ?? 0) + 1);
        return { key: c.id, args: ['sweep', '--cell', String(i), sweepDir], log: path.join(cellDir(sweepDir, c.id), 'worker.log') };
      },
      onSpawn: (task, pid) => {
        const c = state!.cells.find((x) => x.id === task.key)!;
        c.workerPid = pid;
        writeSweepState(sweepDir, state!);
      },
      onExit: (task, code) => {
        const c0 = state!.cells.find((x) => x.id === task.key)!;
        const seconds = (Date.now() - (started.get(c0.index) ?? Date.now())) / 1000;
        started.delete(c0.index);
        sync();
        const c = entry(c0.index);
        c.workerPid = undefined;
        let outcome: 'done' | 'interrupted' | 'failed' | 'retry';
        if (code === 0 && c.status === 'done') {
          outcome = 'done';
          durations.push(seconds);
        } else if (code === 130 || code === 143 || opts.shouldStop?.()) {
          outcome = 'interrupted';
          interrupted = true;
          if (c.status !== 'done') c.status = 'interrupted';
        } else {
          // A worker that died without recording why (killed, out of memory) is recorded here.
          const own = readCellRecord(sweepDir, c.id);
          if (own && own.status !== 'failed') writeCellRecord(sweepDir, { ...own, status: 'failed', error: `worker exited with code ${code}`, endedAt: new Date().toISOString() });
          sync();
          const n = (failures.get(c.index) ?? 0) + 1;
          failures.set(c.index, n);
          if (n <= state!.retries) {
            outcome = 'retry';
            c.status = 'pending';
            queue.push(c.index);
          } else {
            outcome = 'failed';
            c.status = 'failed';
            failed.push(c.name);
          }
          note(`cell ${c.index} (${c.name}) failed (exit ${code}${c.error ? `: ${c.error}` : ''}); log: ${task.log}`);
        }
        writeSweepState(sweepDir, state!);
        opts.progress?.onCellEnd?.(c, outcome, seconds, counts());
      },
      onTick: () => opts.progress?.onTick?.(counts()),
    });
    state = syncSweepState(sweepDir, state);
    for (const c of state.cells) c.workerPid = undefined;
    writeSweepState(sweepDir, state);
    return { sweepDir, state, interrupted: interrupted || (stopped && !state.complete), failed, ran };
  } finally {
    lock.release();
  }
}

/**
 * The aggregated tables of a finished sweep (`ibrar report` over it, every evaluated attack),
 * in <sweepDir>/report; nothing when no cell was evaluated.
 */
export function aggregateSweep(sweepDir: string, note?: (m: string) => void): string[] {
  try {
    return writeReport({ paths: [sweepDir], layout: 'all', outDir: path.join(sweepDir, 'report') }).files;
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    note?.(`no aggregated report: ${err.message}`);
    return [];
  }
}
