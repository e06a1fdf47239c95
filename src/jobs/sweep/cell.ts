// One sweep cell, start to finish: train it (or resume its run from its checkpoint), run its
// evaluation (part of training when the config has eval.attacks), the diagnostics when the sweep
// asks for them, and record the outcome in cells/<id>/cell.json. The same code runs in a local
// pool worker and in a Slurm array task (`ibrar sweep --cell INDEX SWEEP_DIR`), so a cell behaves
// the same wherever it runs, and a cell started again (re-run, retry, Slurm requeue) continues
// its own run directory.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { loadConfig } from '../../config/load';
import { UserError } from '../../errors';
import { acquireRunLock } from '../../runs/lock';
import { readMetrics } from '../../runs/metrics';
import { listRunDirs, runLayout } from '../../runs/run-dir';
import { cellConfigPath, cellDir, readCellRecord, readSweepState, writeCellRecord, type CellRecord, type CellResults } from '../../runs/sweep-files';
import { train, type TrainProgress } from '../train';
import type { EvalProgress } from '../eval';
import { openRun } from '../open-run';
import { diagnose, resolveSurrogate } from '../diagnose';

export type CellOutcome = 'done' | 'interrupted';

export interface CellRunOptions {
  shouldStop?: () => boolean;
  progress?: TrainProgress;
  evalProgress?: EvalProgress;
  onNote?: (message: string) => void;
}

/** The cell's run directory to continue: the newest one with a config (there is normally one). */
function existingRun(runsDir: string, name: string, inside: string, note: (m: string) => void): string | null {
  let found: string | null = null;
  for (const dir of listRunDirs(runsDir, name).reverse()) {
    if (!found && fs.existsSync(runLayout(dir).config)) {
      found = dir;
      continue;
    }
    // Made by a process killed before it wrote the run's config: nothing in it. Only our own folders go.
    if (!fs.existsSync(runLayout(dir).config) && path.resolve(dir).startsWith(path.resolve(inside) + path.sep)) {
      fs.rmSync(dir, { recursive: true, force: true });
      note(`removed ${dir} (a run killed before it wrote its config)`);
    }
  }
  return found;
}

function slurmInfo(): CellRecord['slurm'] {
  const e = process.env;
  if (!e.SLURM_JOB_ID) return undefined;
  return { jobId: e.SLURM_JOB_ID, arrayJobId: e.SLURM_ARRAY_JOB_ID, taskId: e.SLURM_ARRAY_TASK_ID, restarts: Number(e.SLURM_RESTART_COUNT ?? 0) || 0 };
}

export async function runCell(sweepDir: string, index: number, opts: CellRunOptions = {}): Promise<CellOutcome> {
  const state = readSweepState(sweepDir);
  if (!state) throw new UserError('not a sweep directory (sweep-state.json missing)', sweepDir);
  const entry = state.cells.find((c) => c.index === index);
  if (!entry) throw new UserError(`no cell ${index} in this sweep (it has cells 0-${state.cells.length - 1})`, sweepDir, '--cell');
  const note = (m: string) => opts.onNote?.(m);
  const dir = cellDir(sweepDir, entry.id);
  const cfg = loadConfig(cellConfigPath(sweepDir, entry.id));
  let rec: CellRecord = readCellRecord(sweepDir, entry.id) ?? { index, id: entry.id, name: entry.name, status: 'pending', attempts: 0 };
  if (rec.status === 'done') return 'done';
  // One runner per cell: a second one (a stray worker, a duplicated task) stops here.
  const lock = acquireRunLock({ lock: path.join(dir, '.lock') });
  const t0 = Date.now();
  const save = (patch: Partial<CellRecord>) => {
    rec = { ...rec, ...patch };
    writeCellRecord(sweepDir, rec);
  };
  try {
    save({
      status: 'running',
      phase: 'train',
      attempts: rec.attempts + 1,
      error: undefined,
      startedAt: new Date().toISOString(),
      endedAt: undefined,
      host: os.hostname(),
      pid: process.pid,
      threads: cfg.threads,
      slurm: slurmInfo(),
    });
    const resumeDir = existingRun(cfg.runsDir, cfg.name, dir, note);
    const progress: TrainProgress = {
      ...opts.progress,
      onStart: (info) => {
        if (rec.runDir !== info.runDir) save({ runDir: info.runDir });
        opts.progress?.onStart?.(info);
      },
    };
    const evalProgress: EvalProgress = {
      ...opts.evalProgress,
      onStart: (info) => {
        save({ phase: 'eval' });
        opts.evalProgress?.onStart?.(info);
      },
    };
    const res = resumeDir
      ? await train({ resumeDir, progress, evalProgress, shouldStop: opts.shouldStop })
      : await train({ cfg, configFile: cellConfigPath(sweepDir, entry.id), progress, evalProgress, shouldStop: opts.shouldStop });
    if (rec.runDir !== res.runDir) save({ runDir: res.runDir });
    if (res.interrupted) {
      save({ status: 'interrupted', endedAt: new Date().toISOString() });
      return 'interrupted';
    }
    const metrics = readMetrics(res.runDir);
    const last = metrics[metrics.length - 1];
    const results: CellResults = {
      test_acc: typeof last?.test_acc === 'number' ? last.test_acc : undefined,
      best_test_acc: metrics.reduce<number | undefined>((b, m) => (typeof m.test_acc === 'number' && (b === undefined || m.test_acc > b) ? m.test_acc : b), undefined),
    };
    const ev = res.evaluation;
    if (ev?.report) {
      results.clean_acc = ev.report.clean_acc;
      results.robust = Object.fromEntries(ev.report.attacks.map((a) => [a.attack, a.robust_acc]));
      results.worst_case_acc = ev.report.worst_case_acc;
      results.evalFile = ev.files[0];
    }
    if (state.diagnose && ev?.report) {
      save({ phase: 'diagnose', results });
      const run = await openRun({ kind: 'existing', runDir: res.runDir, checkpoint: cfg.eval.checkpoint });
      try {
        const surrogate = await resolveSurrogate(run, state.surrogate, { progress: opts.progress, shouldStop: opts.shouldStop });
        if (surrogate === 'interrupted') {
          save({ status: 'interrupted', endedAt: new Date().toISOString() });
          return 'interrupted';
        }
        try {
          const d = await diagnose(
            run,
            { eps: ev.report.eps, n: Math.min(ev.report.n, state.diagnoseN), batchSize: cfg.eval.batchSize, seed: cfg.eval.seed },
            { surrogate, evalReportFile: ev.files[0], shouldStop: opts.shouldStop },
          );
          if (d.interrupted || !d.report) {
            save({ status: 'interrupted', endedAt: new Date().toISOString() });
            return 'interrupted';
          }
          results.verdict = d.report.verdict;
          results.diagnosticsFile = d.files[0];
        } finally {
          if (surrogate?.owned) surrogate.run.dispose();
        }
      } finally {
        run.dispose();
      }
    }
    save({ status: 'done', phase: undefined, results, seconds: (Date.now() - t0) / 1000, endedAt: new Date().toISOString(), pid: undefined });
    return 'done';
  } catch (err) {
    save({ status: 'failed', error: (err as Error).message, endedAt: new Date().toISOString() });
    throw err;
  } finally {
    lock.release();
  }
}
