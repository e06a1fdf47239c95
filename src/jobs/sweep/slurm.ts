// The Slurm executor: one sbatch script for the whole sweep, a job array with one task per cell
// (`--array=0-(K-1)%P`), each task running `ibrar sweep --cell INDEX SWEEP_DIR` against the
// shared sweep directory (a requeued task resumes its cell from its checkpoint), plus an
// aggregation job (`--dependency=afterany:<array>`) that runs `ibrar report` over the sweep.
// `sweepStatus` merges what the scheduler knows (squeue; sacct where accounting works) with the
// cells' own status files, the only record that never expires.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { execFile } from 'child_process';
import type { SlurmSettings } from '../../config/sweep-schema';
import { UserError } from '../../errors';
import { pidAlive, writeFileAtomic, writeJsonAtomic } from '../../runs/atomic';
import { readCellRecord, readSweepState, type CellRecord, type SweepCellEntry, type SweepState } from '../../runs/sweep-files';
import { defaultCliPath } from '../pool';
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../../engine/safe-read';

export interface SlurmFiles {
  dir: string;
  cellsScript: string;
  reportScript: string;
  submissions: string;
  logs: string;
}

export function slurmFiles(sweepDir: string): SlurmFiles {
  const dir = path.join(sweepDir, 'slurm');
  return {
    dir,
    cellsScript: path.join(dir, 'cells.sbatch'),
    reportScript: path.join(dir, 'report.sbatch'),
    submissions: path.join(dir, 'submissions.json'),
    logs: path.join(dir, 'logs'),
  };
}

export interface Submission {
  arrayJobId: string;
  reportJobId: string;
  /** Cell indices in this array. */
  cells: number[];
  array: string;
  submittedAt: string;
}

/** Single-quoted for bash. */
export function shq(s: string): string {
  return /^[A-Za-z0-9_./=:,@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** `0-3`, `1,3,5-7`: the indices as Slurm array ranges. */
export function arrayRanges(indices: readonly number[]): string {
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j] + 1) j++;
    parts.push(i === j ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}

export interface ScriptOptions {
  sweepDir: string;
  state: SweepState;
  slurm: SlurmSettings;
  /** Cells to run (default all). */
  cells?: number[];
  /** Where the tasks start (the directory relative paths in the configs refer to). */
  cwd?: string;
  nodePath?: string;
  cliPath?: string;
}

function commonLines(s: SlurmSettings): string[] {
  const lines: string[] = [];
  if (s.partition) lines.push(`#SBATCH --partition=${s.partition}`);
  if (s.account) lines.push(`#SBATCH --account=${s.account}`);
  return lines;
}

/** The job array script: one task per cell. */
export function cellsScript(o: ScriptOptions): string {
  const s = o.slurm;
  const cells = o.cells ?? o.state.cells.map((c) => c.index);
  const files = slurmFiles(o.sweepDir);
  const node = o.nodePath ?? process.execPath;
  const cli = o.cliPath ?? defaultCliPath();
  const array = `${arrayRanges(cells)}${s.parallel ? `%${s.parallel}` : ''}`;
  return [
    '#!/bin/bash',
    `# ibrar sweep ${o.state.name}: ${o.state.cells.length} cells, one array task per cell (this array: ${cells.length}).`,
    '# Written by `ibrar sweep --executor slurm`, submitted with `sbatch --parsable` and followed by',
    '# report.sbatch (--dependency=afterany:<this array>). Each task runs its cell against the shared',
    '# sweep directory; a requeued task resumes its cell from its last checkpoint.',
    `# Cell states: ibrar sweep status ${shq(o.sweepDir)}`,
    `#SBATCH --job-name=${o.state.name}-sweep`,
    `#SBATCH --array=${array}`,
    `#SBATCH --cpus-per-task=${s.cpusPerTask}`,
    ...(s.gpus > 0 ? [`#SBATCH --gpus=${s.gpus}`] : []),
    ...(s.time ? [`#SBATCH --time=${s.time}`] : []),
    ...(s.mem ? [`#SBATCH --mem=${s.mem}`] : []),
    ...commonLines(s),
    `#SBATCH --output=${path.join(files.logs, 'cell-%a.out')}`,
    '#SBATCH --open-mode=append',
    '#SBATCH --requeue',
    ...s.extra.map((l) => (l.startsWith('#SBATCH') ? l : `#SBATCH ${l}`)),
    'set -eu',
    `cd ${shq(o.cwd ?? process.cwd())}`,
    `export IBRAR_NATIVE_THREADS=${o.state.threads}`,
    ...s.setup,
    `exec ${shq(node)} ${shq(cli)} sweep --cell "$SLURM_ARRAY_TASK_ID" ${shq(o.sweepDir)}`,
    '',
  ].join('\n');
}

/** The aggregation job: `ibrar report` over the sweep, into <sweepDir>/report. */
export function reportScript(o: ScriptOptions): string {
  const s = o.slurm;
  const files = slurmFiles(o.sweepDir);
  const node = o.nodePath ?? process.execPath;
  const cli = o.cliPath ?? defaultCliPath();
  return [
    '#!/bin/bash',
    `# ibrar sweep ${o.state.name}: aggregated tables (mean ± std over seeds) once every cell has ended.`,
    '# Submitted with --dependency=afterany:<array job id> (runs whether or not some cells failed).',
    `#SBATCH --job-name=${o.state.name}-report`,
    '#SBATCH --cpus-per-task=1',
    `#SBATCH --time=${s.reportTime}`,
    ...commonLines(s),
    `#SBATCH --output=${path.join(files.logs, 'report-%j.out')}`,
    'set -eu',
    `cd ${shq(o.cwd ?? process.cwd())}`,
    ...s.setup,
    `exec ${shq(node)} ${shq(cli)} report ${shq(o.sweepDir)} --layout all --out ${shq(path.join(o.sweepDir, 'report'))}`,
    '',
  ].join('\n');
}

/** Writes both scripts; returns their paths. */
export function writeSlurmScripts(o: ScriptOptions): SlurmFiles {
  const files = slurmFiles(o.sweepDir);
  fs.mkdirSync(files.logs, { recursive: true });
  writeFileAtomic(files.cellsScript, cellsScript(o), { mode: 0o755 });
  writeFileAtomic(files.reportScript, reportScript(o), { mode: 0o755 });
  return files;
}

interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
  missing: boolean;
}

function runCmd(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 60_000): Promise<CmdResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, stdout: String(stdout), stderr: String(stderr), missing: e?.code === 'ENOENT' });
    });
  });
}

function jobIdOf(parsable: string, what: string): string {
  const id = parsable.trim().split('\n').pop()!.split(';')[0].trim();
  if (!/^\d+$/.test(id)) throw new Error(`sbatch --parsable printed ${JSON.stringify(parsable)} for the ${what}`);
  return id;
}

export function readSubmissions(sweepDir: string): Submission[] {
  try {
    const v = JSON.parse(readTextBoundedOrNull(slurmFiles(sweepDir).submissions, { maxBytes: MAX_STATE_FILE_BYTES, what: 'Slurm submissions file' }) ?? 'null');
    return Array.isArray(v) ? (v as Submission[]) : [];
  } catch {
    return [];
  }
}

async function sbatch(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const r = await runCmd('sbatch', ['--parsable', ...args], env);
  if (r.missing) throw new UserError('sbatch not found: the Slurm executor needs the Slurm client commands (run on a login node, or use --executor local)');
  if (r.code !== 0) throw new UserError(`sbatch ${args.join(' ')} failed (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** Array tasks of `arrayJobId` still pending or running, by cell index; null when squeue cannot say. */
async function queuedTasks(arrayJobId: string, env?: NodeJS.ProcessEnv): Promise<Map<number, string> | null> {
  const r = await runCmd('squeue', ['-h', '-r', '-j', arrayJobId, '-o', '%K %T'], env);
  if (r.code !== 0) return null;
  return parseSqueue(r.stdout);
}

function parseSqueue(out: string): Map<number, string> {
  const m = new Map<number, string>();
  for (const line of out.split('\n')) {
    const [k, st] = line.trim().split(/\s+/);
    if (k !== undefined && /^\d+$/.test(k) && st) m.set(Number(k), st);
  }
  return m;
}

/**
 * Submits the unfinished cells of a sweep as a job array, then the aggregation job. Refuses while
 * an earlier array of this sweep still has tasks in the queue.
 */
export async function submitSweep(o: ScriptOptions & { env?: NodeJS.ProcessEnv }): Promise<Submission> {
  const prior = readSubmissions(o.sweepDir);
  const last = prior[prior.length - 1];
  if (last) {
    const queued = await queuedTasks(last.arrayJobId, o.env);
    if (queued && queued.size > 0) {
      throw new UserError(`this sweep's job array ${last.arrayJobId} still has ${queued.size} task(s) in the queue; see: ibrar sweep status ${o.sweepDir}`, o.sweepDir);
    }
  }
  const files = writeSlurmScripts(o);
  const cells = o.cells ?? o.state.cells.map((c) => c.index);
  const arrayJobId = jobIdOf(await sbatch([files.cellsScript], o.env), 'job array');
  const reportJobId = jobIdOf(await sbatch([`--dependency=afterany:${arrayJobId}`, files.reportScript], o.env), 'aggregation job');
  const sub: Submission = { arrayJobId, reportJobId, cells, array: arrayRanges(cells), submittedAt: new Date().toISOString() };
  writeJsonAtomic(files.submissions, [...prior, sub]);
  return sub;
}

export interface CellStatusRow {
  index: number;
  id: string;
  name: string;
  values: Record<string, unknown>;
  /** done, running, pending, failed, interrupted, or the scheduler's word (PENDING, TIMEOUT, …) in lower case. */
  state: string;
  /** Where the state comes from: the cell's own file, squeue, sacct. */
  source: 'cell' | 'squeue' | 'sacct';
  attempts: number;
  restarts?: number;
  runDir?: string;
  record: CellRecord | null;
}

export interface SweepStatus {
  sweepDir: string;
  state: SweepState;
  rows: CellStatusRow[];
  submission: Submission | null;
  /** The aggregation job's state, when the scheduler still knows it. */
  reportJob: string | null;
  /** Why the scheduler could not be asked (no squeue here, …). */
  notes: string[];
}

/** sacct's view (real clusters with slurmdbd); null where accounting is off. */
async function sacctTasks(arrayJobId: string, env?: NodeJS.ProcessEnv): Promise<Map<number, string> | null> {
  const r = await runCmd('sacct', ['-j', arrayJobId, '-X', '-P', '-n', '-o', 'JobID,State'], env);
  if (r.code !== 0) return null;
  const m = new Map<number, string>();
  for (const line of r.stdout.split('\n')) {
    const [id, st] = line.trim().split('|');
    const k = /_(\d+)$/.exec(id ?? '');
    if (k && st) m.set(Number(k[1]), st.split(' ')[0]);
  }
  return m;
}

const ACTIVE = new Set(['PENDING', 'CONFIGURING', 'RUNNING', 'COMPLETING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESIZING', 'SUSPENDED', 'STAGE_OUT', 'SIGNALING']);

/** Per-cell state of a sweep (any executor): the cells' own files, and for Slurm sweeps the queue. */
export async function sweepStatus(sweepDir: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<SweepStatus> {
  const state = readSweepState(sweepDir);
  if (!state) throw new UserError('not a sweep directory (sweep-state.json missing)', sweepDir);
  const subs = state.executor === 'slurm' ? readSubmissions(sweepDir) : [];
  const submission = subs[subs.length - 1] ?? null;
  const notes: string[] = [];
  let queue: Map<number, string> | null = null;
  let acct: Map<number, string> | null = null;
  let reportJob: string | null = null;
  if (submission) {
    const r = await runCmd('squeue', ['-h', '-r', '-t', 'all', '-j', submission.arrayJobId, '-o', '%K %T'], opts.env);
    if (r.missing) notes.push('squeue not found: showing the cells’ own status files only');
    else if (r.code === 0) queue = parseSqueue(r.stdout);
    else notes.push(`squeue: ${(r.stderr || r.stdout).trim()}`);
    acct = await sacctTasks(submission.arrayJobId, opts.env);
    const rep = await runCmd('squeue', ['-h', '-t', 'all', '-j', submission.reportJobId, '-o', '%T'], opts.env);
    if (rep.code === 0 && rep.stdout.trim()) reportJob = rep.stdout.trim().toLowerCase();
    else if (fs.existsSync(path.join(sweepDir, 'report', 'report.md'))) reportJob = 'done (report/report.md)';
  }
  const rows = state.cells.map((c: SweepCellEntry): CellStatusRow => {
    const rec = readCellRecord(sweepDir, c.id);
    const base = { index: c.index, id: c.id, name: c.name, values: c.values, attempts: rec?.attempts ?? 0, restarts: rec?.slurm?.restarts, runDir: rec?.runDir, record: rec };
    if (rec?.status === 'done') return { ...base, state: 'done', source: 'cell' };
    const inArray = submission?.cells.includes(c.index);
    const q = inArray ? queue?.get(c.index) : undefined;
    const a = inArray ? acct?.get(c.index) : undefined;
    if (q && ACTIVE.has(q)) return { ...base, state: q === 'RUNNING' ? 'running' : q.toLowerCase(), source: 'squeue' };
    if (a && ACTIVE.has(a)) return { ...base, state: a === 'RUNNING' ? 'running' : a.toLowerCase(), source: 'sacct' };
    // Ended without finishing the cell: the scheduler's reason (TIMEOUT, OUT_OF_MEMORY, …) if it has one.
    const ended = q ?? a;
    if (ended && ended !== 'COMPLETED') return { ...base, state: ended.toLowerCase(), source: q ? 'squeue' : 'sacct' };
    const own = rec?.status ?? c.status;
    // A cell file saying "running" with no job behind it: its task was killed without a word.
    const lost =
      own === 'running' &&
      ((submission !== null && queue !== null && !q) || (rec?.host === os.hostname() && rec.pid !== undefined && !rec.slurm && !pidAlive(rec.pid)));
    return { ...base, state: lost ? 'interrupted' : own, source: 'cell' };
  });
  return { sweepDir, state, rows, submission, reportJob, notes };
}
