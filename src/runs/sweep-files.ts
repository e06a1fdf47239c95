// What a sweep keeps on disk, all written atomically:
//   <sweepDir>/sweep.yaml              the sweep definition, base config inlined (provenance)
//   <sweepDir>/sweep-state.json        the queue: cells, their status and attempts (the driver's view)
//   <sweepDir>/cells/<id>/cell.yaml    the cell's resolved config (runsDir and threads set)
//   <sweepDir>/cells/<id>/cell.json    the cell's own status record, written by whoever runs the
//                                      cell (a local worker or a Slurm array task); authoritative
//   <sweepDir>/cells/<id>/<name>/<time>/  the cell's run: an ordinary run dir
//   <sweepDir>/slurm/                  sbatch scripts, submissions, task logs (Slurm executor)
// A re-run reads the cells' own files, so work finished by a worker whose driver died is kept.
import * as fs from 'fs';
import * as path from 'path';
import { writeJsonAtomic } from './atomic';
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';

export const SWEEP_STATE_FILE = 'sweep-state.json';
export const SWEEP_DEF_FILE = 'sweep.yaml';
export const CELL_CONFIG_FILE = 'cell.yaml';
export const CELL_RECORD_FILE = 'cell.json';

export type CellStatus = 'pending' | 'running' | 'done' | 'failed' | 'interrupted';

export interface CellResults {
  /** Test accuracy after the last epoch, and the best. */
  test_acc?: number;
  best_test_acc?: number;
  /** The evaluation's clean and per-attack accuracies, worst case. */
  clean_acc?: number;
  robust?: Record<string, number>;
  worst_case_acc?: number;
  evalFile?: string;
  /** The gradient-masking verdict, when the sweep runs the diagnostics. */
  verdict?: 'supported' | 'suspect';
  diagnosticsFile?: string;
}

export interface CellRecord {
  index: number;
  id: string;
  name: string;
  status: CellStatus;
  /** What the cell was doing last: training (also resuming), evaluating, diagnosing. */
  phase?: 'train' | 'eval' | 'diagnose';
  /** Times the cell was started (a resume counts). */
  attempts: number;
  runDir?: string;
  results?: CellResults;
  error?: string;
  /** Wall seconds of the attempt that finished the cell. */
  seconds?: number;
  startedAt?: string;
  endedAt?: string;
  host?: string;
  pid?: number;
  threads?: number;
  /** Set when the cell runs as a Slurm array task. */
  slurm?: { jobId?: string; arrayJobId?: string; taskId?: string; restarts: number };
  updatedAt?: string;
}

export interface SweepCellEntry {
  index: number;
  id: string;
  name: string;
  values: Record<string, unknown>;
  origin: 'grid' | 'include';
  status: CellStatus;
  attempts: number;
  runDir?: string;
  results?: CellResults;
  error?: string;
  seconds?: number;
  /** The local worker process running it, while it runs. */
  workerPid?: number;
}

export interface SweepState {
  format: 'ibrar-sweep-state/1';
  name: string;
  gridHash: string;
  executor: 'local' | 'slurm';
  /** Native threads every cell runs with (recorded in each cell's config). */
  threads: number;
  /** The key paths the cells set, for tables. */
  columns: string[];
  diagnose: boolean;
  surrogate: string;
  diagnoseN: number;
  retries: number;
  createdAt: string;
  updatedAt: string;
  complete: boolean;
  cells: SweepCellEntry[];
}

export function cellDir(sweepDir: string, id: string): string {
  return path.join(sweepDir, 'cells', id);
}

export function cellConfigPath(sweepDir: string, id: string): string {
  return path.join(cellDir(sweepDir, id), CELL_CONFIG_FILE);
}

export function cellRecordPath(sweepDir: string, id: string): string {
  return path.join(cellDir(sweepDir, id), CELL_RECORD_FILE);
}

export function readSweepState(sweepDir: string): SweepState | null {
  try {
    const s = JSON.parse(readTextBoundedOrNull(path.join(sweepDir, SWEEP_STATE_FILE), { maxBytes: MAX_STATE_FILE_BYTES, what: 'sweep state' }) ?? 'null') as SweepState;
    return s && s.format === 'ibrar-sweep-state/1' && Array.isArray(s.cells) ? s : null;
  } catch {
    return null;
  }
}

export function writeSweepState(sweepDir: string, state: SweepState): void {
  state.updatedAt = new Date().toISOString();
  writeJsonAtomic(path.join(sweepDir, SWEEP_STATE_FILE), state);
}

export function readCellRecord(sweepDir: string, id: string): CellRecord | null {
  try {
    const r = JSON.parse(readTextBoundedOrNull(cellRecordPath(sweepDir, id), { maxBytes: MAX_STATE_FILE_BYTES, what: 'sweep cell record' }) ?? 'null') as CellRecord;
    return r && typeof r.status === 'string' && r.id === id ? r : null;
  } catch {
    return null;
  }
}

export function writeCellRecord(sweepDir: string, rec: CellRecord): void {
  const file = cellRecordPath(sweepDir, rec.id);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeJsonAtomic(file, { ...rec, updatedAt: new Date().toISOString() });
}

/** Fold the cells' own records into the state (they win). */
export function syncSweepState(sweepDir: string, state: SweepState): SweepState {
  state.cells = state.cells.map((c) => {
    const own = readCellRecord(sweepDir, c.id);
    if (!own) return c;
    return { ...c, status: own.status, attempts: own.attempts, runDir: own.runDir, results: own.results, error: own.error, seconds: own.seconds };
  });
  state.complete = state.cells.every((c) => c.status === 'done');
  return state;
}
