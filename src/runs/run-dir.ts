// Run directories: `<runsRoot>/<name>/<YYYYMMDD-HHMMSS>[-N]/`, one per run, never reused.
// The leaf is made with a non-recursive mkdir, which fails with EEXIST if it already exists,
// so two processes starting in the same second get different directories (-2, -3, ...).
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../errors';
import { checkDirectory, checkWritableFile, makeDirs } from '../engine/safe-read';

export interface RunLayout {
  dir: string;
  /** The resolved config the run was started with. */
  config: string;
  metricsJsonl: string;
  metricsCsv: string;
  log: string;
  checkpoints: string;
  evalDir: string;
  figures: string;
  lock: string;
}

export function runLayout(dir: string): RunLayout {
  return {
    dir,
    config: path.join(dir, 'config.yaml'),
    metricsJsonl: path.join(dir, 'metrics.jsonl'),
    metricsCsv: path.join(dir, 'metrics.csv'),
    log: path.join(dir, 'log.jsonl'),
    checkpoints: path.join(dir, 'checkpoints'),
    evalDir: path.join(dir, 'eval'),
    figures: path.join(dir, 'figures'),
    lock: path.join(dir, '.lock'),
  };
}

/**
 * An existing run directory's parts, before anything of it is read or written: its folders
 * must be directories and its files regular files (or absent). A pipe, device or socket
 * planted under a run file's name would block a read or an append, or swallow what is written.
 */
export function checkRunDirShape(layout: RunLayout): void {
  if (!checkDirectory(layout.dir, 'run directory')) throw new UserError('no such run directory', layout.dir);
  const dirs: Array<[string, string]> = [
    [layout.checkpoints, 'checkpoints folder'],
    [layout.evalDir, 'evaluation folder'],
    [layout.figures, 'figures folder'],
  ];
  for (const [dir, what] of dirs) checkDirectory(dir, what);
  const files: Array<[string, string]> = [
    [layout.config, 'run config'],
    [layout.metricsJsonl, 'metrics file'],
    [layout.metricsCsv, 'metrics file'],
    [layout.log, 'run log'],
    [layout.lock, 'run lock'],
  ];
  for (const [file, what] of files) checkWritableFile(file, what);
}

/** Local-time `YYYYMMDD-HHMMSS`. */
export function runTimestamp(now: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return (
    `${p(now.getFullYear(), 4)}${p(now.getMonth() + 1)}${p(now.getDate())}-` +
    `${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`
  );
}

const NAME_RE = /^[A-Za-z0-9._-]+$/;
const MAX_SUFFIX = 10_000;

function describeFsError(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (!e.code) return String(err);
  return e.message.startsWith(e.code) ? e.message : `${e.code}: ${e.message}`;
}

/** Fail early, with a clear message, if `dir` cannot be written (creating it if needed). */
export function assertWritableDir(dir: string, what: string): void {
  try {
    makeDirs(dir);
  } catch (err) {
    throw new UserError(`cannot create the ${what} (${describeFsError(err)})`, dir);
  }
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch (err) {
    throw new UserError(`the ${what} is not writable (${describeFsError(err)}); set runsDir in the config to a writable folder`, dir);
  }
  if (!fs.statSync(dir).isDirectory()) throw new UserError(`the ${what} is not a directory`, dir);
}

/**
 * A new, empty folder `<parent>/<timestamp>` (`-2`, `-3`, … when that exists already): run, sweep
 * and probe folders alike. `what` names the parent in messages; `now` is injectable for tests.
 */
export function createStampedDir(parent: string, what: string, now: Date = new Date()): string {
  assertWritableDir(parent, what);
  const stamp = runTimestamp(now);
  for (let n = 1; n <= MAX_SUFFIX; n++) {
    const dir = path.join(parent, n === 1 ? stamp : `${stamp}-${n}`);
    try {
      fs.mkdirSync(dir);
      return dir;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw new UserError(`cannot create the folder (${describeFsError(err)})`, dir);
    }
  }
  throw new UserError(`${MAX_SUFFIX} folders named ${stamp} already exist`, parent);
}

/**
 * Create a new, empty run directory and its subfolders; returns its path.
 * `now` is injectable for tests.
 */
export function createRunDir(runsRoot: string, name: string, now: Date = new Date()): string {
  if (!NAME_RE.test(name) || name === '.' || name === '..') {
    throw new UserError(`experiment name must be letters, digits, '.', '_' or '-', found '${name}'`);
  }
  const dir = createStampedDir(path.join(runsRoot, name), 'runs folder', now);
  const layout = runLayout(dir);
  for (const sub of [layout.checkpoints, layout.evalDir, layout.figures]) makeDirs(sub);
  return dir;
}

/** Run directories of experiment `name`, oldest first (by name, which sorts by time then suffix). */
export function listRunDirs(runsRoot: string, name: string): string[] {
  const parent = path.join(runsRoot, name);
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(parent, { withFileTypes: true });
  } catch {
    return [];
  }
  const key = (s: string): [string, number] => {
    const m = /^(\d{8}-\d{6})(?:-(\d+))?$/.exec(s)!;
    return [m[1], m[2] ? Number(m[2]) : 1];
  };
  return entries
    .filter((e) => e.isDirectory() && /^\d{8}-\d{6}(-\d+)?$/.test(e.name))
    .map((e) => e.name)
    .sort((a, b) => {
      const [sa, na] = key(a);
      const [sb, nb] = key(b);
      return sa < sb ? -1 : sa > sb ? 1 : na - nb;
    })
    .map((n) => path.join(parent, n));
}

/** The newest run directory of experiment `name`, or null. */
export function latestRunDir(runsRoot: string, name: string): string | null {
  const all = listRunDirs(runsRoot, name);
  return all.length > 0 ? all[all.length - 1] : null;
}
