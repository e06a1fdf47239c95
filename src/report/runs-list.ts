// `ibrar runs ls`: one line per run directory — what state it is in, how far it got, what its
// newest evaluation says, how long it trained and when it started. Reads run dirs only.
//
// Status, first rule that applies:
//   running      its `.lock` is held by a live process (on another host: cannot be checked,
//                reported as running with the host named)
//   failed       the last line of log.jsonl is the trainer's 'training failed'
//   imported     made by `ibrar import` (imported.json, or the sidecar's trainer state says so)
//   finished     the `last` checkpoint is at the config's last epoch (train.epochs, step 0)
//   interrupted  anything else: stopped (Ctrl-C, kill, power cut) before the last epoch, or
//                killed before its first checkpoint
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { pidAlive } from '../runs/atomic';
import { readImportedFile } from '../runs/imported-file';
import { readMetrics } from '../runs/metrics';
import { runLayout } from '../runs/run-dir';
import type { EvalReport } from '../runs/eval-report';
import { findRunDirs, readEvalFiles, readRunConfig, type EvalFile } from './runs';
import { formatEps } from './eval-tables';
import { MIB, openRegularFile, readTextBoundedOrNull } from '../engine/safe-read';

export const RUN_STATUSES = ['running', 'failed', 'imported', 'finished', 'interrupted'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const LIST_SORTS = ['started', 'name', 'clean', 'robust'] as const;
export type ListSort = (typeof LIST_SORTS)[number];

export interface RunSummary {
  /** Absolute path of the run directory. */
  dir: string;
  /** The run's path relative to the folder listed (or `<name>/<time>`). */
  run: string;
  /** The config's experiment name. */
  name: string;
  status: RunStatus;
  /** Why: the failure's message, the lock holder, the import's source. */
  note: string | null;
  /** Completed epochs of the `last` checkpoint (0 without one) and steps into the next. */
  epoch: number;
  step: number;
  epochs: number;
  /** Newest evaluation (at the run's own eval.eps when there is one): clean and worst-case accuracy. */
  clean: number | null;
  /** Per-example worst case over the evaluation's attacks (its strongest robust number). */
  robust: number | null;
  attacks: Record<string, number>;
  eval: { file: string; eps: string; n: number; checkpoint: string } | null;
  /** Training time: the sum of metrics.jsonl's per-epoch seconds. */
  wallSeconds: number;
  /** From the run directory's name (local time, YYYY-MM-DDTHH:MM:SS), else config.yaml's mtime. */
  started: string | null;
}

interface SidecarPosition {
  epoch: number;
  step: number;
  imported: boolean;
}

/** Epoch and step of `checkpoints/last.json` (plain JSON: listing runs loads no tensors). */
function lastPosition(runDir: string): SidecarPosition | null {
  try {
    const v = JSON.parse(readTextBoundedOrNull(path.join(runLayout(runDir).checkpoints, 'last.json'), { maxBytes: 64 * MIB, what: 'checkpoint sidecar' }) ?? 'null') as Record<string, unknown>;
    if (!v || typeof v.epoch !== 'number' || typeof v.step !== 'number') return null;
    const state = v.state as Record<string, unknown> | undefined;
    return { epoch: v.epoch, step: v.step, imported: Boolean(state && typeof state === 'object' && state.imported) };
  } catch {
    return null;
  }
}

/** The last complete line of log.jsonl, parsed (null when absent or not JSON). */
export function lastLogLine(runDir: string): Record<string, unknown> | null {
  const file = runLayout(runDir).log;
  // Never blocks: a FIFO or device in place of the log is refused, not opened.
  let opened: { fd: number; size: number } | null;
  try {
    opened = openRegularFile(file, { maxBytes: Number.MAX_SAFE_INTEGER, what: 'run log' });
  } catch {
    return null;
  }
  if (!opened) return null;
  const { fd, size } = opened;
  try {
    const len = Math.min(size, 1 << 16);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n').filter((l) => l.trim() !== '');
    for (let i = lines.length - 1; i >= 0; i--) {
      try {
        return JSON.parse(lines[i]) as Record<string, unknown>;
      } catch {
        // a line cut short by a kill: the one before it
      }
    }
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

/** Who holds the run's lock, if a live process (or one on another host) does. */
export function lockHolder(runDir: string): string | null {
  let info: { pid?: unknown; host?: unknown };
  try {
    info = JSON.parse(readTextBoundedOrNull(runLayout(runDir).lock, { maxBytes: 64 * 1024, what: 'run lock' }) ?? 'null') as typeof info;
  } catch {
    return null;
  }
  if (!info || typeof info.pid !== 'number' || typeof info.host !== 'string') return null;
  if (info.host !== os.hostname()) return `pid ${info.pid} on ${info.host}`;
  return pidAlive(info.pid) ? `pid ${info.pid}` : null;
}

/** `20260101-120000[-2]` → `2026-01-01T12:00:00`. */
function startedFromName(dir: string): string | null {
  const m = /^(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})(?:-\d+)?$/.exec(path.basename(dir));
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}` : null;
}

function localIso(d: Date): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/**
 * The evaluation a run is summarised by: the newest at the run's own `eval.eps` (sweeps at
 * other budgets do not replace it), else the newest of all.
 */
export function newestEvaluation(runDir: string, cfg: ExperimentConfig): EvalFile | null {
  const all = readEvalFiles(runDir);
  const own = all.filter((e) => Math.abs(e.report.eps - cfg.eval.eps) < 1e-12);
  return (own.length ? own : all).at(-1) ?? null;
}

function evalSummary(e: EvalFile | null): Pick<RunSummary, 'clean' | 'robust' | 'attacks' | 'eval'> {
  if (!e) return { clean: null, robust: null, attacks: {}, eval: null };
  const r: EvalReport = e.report;
  return {
    clean: r.clean_acc,
    robust: r.attacks.length ? r.worst_case_acc : null,
    attacks: Object.fromEntries(r.attacks.map((a) => [a.attack, a.robust_acc])),
    eval: { file: e.file, eps: r.eps_str || formatEps(r.eps), n: r.n, checkpoint: r.checkpoint.tag },
  };
}

/** One run's summary; `root` is the folder its label is relative to. */
export function summarizeRun(runDir: string, root?: string): RunSummary {
  const dir = path.resolve(runDir);
  const cfg = readRunConfig(dir);
  const pos = lastPosition(dir);
  const imported = readImportedFile(dir);
  const log = lastLogLine(dir);
  const holder = lockHolder(dir);
  let status: RunStatus;
  let note: string | null = null;
  if (holder) {
    status = 'running';
    note = holder;
  } else if (log && log.msg === 'training failed') {
    status = 'failed';
    note = typeof log.err === 'string' ? log.err : null;
  } else if (imported || pos?.imported) {
    status = 'imported';
    note = imported ? `from ${imported.source}` : null;
  } else if (pos && pos.epoch >= cfg.train.epochs && pos.step === 0) status = 'finished';
  else status = 'interrupted';
  const wallSeconds = readMetrics(dir).reduce((s, r) => s + (typeof r.seconds === 'number' ? r.seconds : 0), 0);
  let started = startedFromName(dir);
  if (!started) {
    try {
      started = localIso(fs.statSync(runLayout(dir).config).mtime);
    } catch {
      started = null;
    }
  }
  const rel = root ? path.relative(path.resolve(root), dir) : '';
  return {
    dir,
    run: rel && !rel.startsWith('..') ? rel : path.join(path.basename(path.dirname(dir)), path.basename(dir)),
    name: cfg.name,
    status,
    note,
    epoch: pos?.epoch ?? 0,
    step: pos?.step ?? 0,
    epochs: cfg.train.epochs,
    ...evalSummary(newestEvaluation(dir, cfg)),
    wallSeconds,
    started,
  };
}

function compare(sort: ListSort): (a: RunSummary, b: RunSummary) => number {
  const byStarted = (a: RunSummary, b: RunSummary) => ((a.started ?? '') < (b.started ?? '') ? -1 : (a.started ?? '') > (b.started ?? '') ? 1 : a.run < b.run ? -1 : a.run > b.run ? 1 : 0);
  // Accuracies: best first, runs without an evaluation last.
  const byValue = (get: (r: RunSummary) => number | null) => (a: RunSummary, b: RunSummary) => {
    const x = get(a);
    const y = get(b);
    if (x === null || y === null) return x === y ? byStarted(a, b) : x === null ? 1 : -1;
    return y - x || byStarted(a, b);
  };
  switch (sort) {
    case 'name':
      return (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : byStarted(a, b));
    case 'clean':
      return byValue((r) => r.clean);
    case 'robust':
      return byValue((r) => r.robust);
    default:
      return byStarted;
  }
}

/** Every run under `root` (a runs folder, `runs/<name>`, or one run dir), sorted. */
export function listRuns(root: string, sort: ListSort = 'started'): RunSummary[] {
  if (!fs.existsSync(root) || !fs.statSync(root).isDirectory()) throw new UserError('expected a folder of run directories (e.g. runs/)', root);
  let dirs: string[];
  try {
    dirs = findRunDirs([root]);
  } catch (err) {
    if (err instanceof UserError) return [];
    throw err;
  }
  return dirs.map((d) => summarizeRun(d, root)).sort(compare(sort));
}

/** `3725` → `1:02:05`. */
export function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${h}:${p(m)}:${p(s % 60)}`;
}

export function percent(v: number | null): string {
  return v === null ? '–' : `${(100 * v).toFixed(2)}%`;
}

/** Columns padded to their widest cell (numbers right-aligned). */
export function alignedTable(header: readonly string[], rows: readonly string[][], right: ReadonlySet<number> = new Set()): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** The human table of `runs ls`. */
export function formatRunList(runs: readonly RunSummary[]): string {
  if (runs.length === 0) return 'no runs\n';
  const rows = runs.map((r) => [
    r.run,
    r.status,
    // An imported run's checkpoint sits at its config's last epoch by convention: not trained here.
    r.status === 'imported' ? '–' : `${r.epoch}/${r.epochs}` + (r.step > 0 ? ` +${r.step} steps` : ''),
    percent(r.clean),
    percent(r.robust),
    formatDuration(r.wallSeconds),
    r.started ? r.started.replace('T', ' ') : '–',
    r.note ? (r.note.length > 60 ? r.note.slice(0, 59) + '…' : r.note) : '',
  ]);
  return alignedTable(['run', 'status', 'epoch', 'clean', 'robust', 'wall', 'started', 'note'], rows, new Set([3, 4, 5]));
}
