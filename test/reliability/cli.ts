// Helpers for the reliability tests: run the real CLI (`node bin/ibrar.js`, which runs dist/)
// in child processes, wait for what it prints, and snapshot folders to prove nothing changed.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import { createHash } from 'crypto';
import * as path from 'path';
import { REPO_ROOT } from '../helpers/golden';
import { readMetrics } from '../../src/runs/metrics';

export { REPO_ROOT };
/** The CLI under test; IBRAR_TEST_BIN runs the same cases against another build (e.g. main's, to see them fail there). */
export const BIN = process.env.IBRAR_TEST_BIN ?? path.join(REPO_ROOT, 'bin', 'ibrar.js');
/** The fault-injection preload (compiled next to this file). */
export const FAULT_PRELOAD = path.join(__dirname, 'fault-preload.js');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Load the fault-injection preload (`node -r fault-preload.js`). */
  faults?: boolean;
  /** Kill (SIGKILL) the child if it runs longer than this. Default 60 s. */
  timeoutMs?: number;
}

export interface CliChild {
  child: ChildProcess;
  /** Everything printed so far. */
  out(): { stdout: string; stderr: string };
  /** Resolves once stderr matches `re` (rejects when the child exits first). */
  waitFor(re: RegExp, timeoutMs?: number): Promise<string>;
  done: Promise<CliResult>;
}

export function spawnCli(args: string[], opts: CliOptions = {}): CliChild {
  const nodeArgs = [...(opts.faults ? ['-r', FAULT_PRELOAD] : []), BIN, ...args];
  // CI=1 keeps the progress output line-based (no TTY bars) whatever the parent's terminal.
  const child = spawn(process.execPath, nodeArgs, {
    cwd: opts.cwd ?? REPO_ROOT,
    env: { ...process.env, CI: '1', ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const l of listeners) l();
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      for (const l of listeners) l();
      resolve({ code, signal, stdout, stderr });
    });
  });
  let exited = false;
  void done.then(() => (exited = true));
  const waitFor = (re: RegExp, timeoutMs = 60_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => finish(new Error(`timed out waiting for ${re} in stderr:\n${stderr}`)), timeoutMs);
      const check = (): void => {
        const m = re.exec(stderr);
        if (m) finish(null, m[0]);
        else if (exited) finish(new Error(`child exited before printing ${re}; stderr:\n${stderr}`));
      };
      const finish = (err: Error | null, v?: string): void => {
        clearTimeout(t);
        listeners.delete(check);
        if (err) reject(err);
        else resolve(v!);
      };
      listeners.add(check);
      void done.then(check);
      check();
    });
  return { child, out: () => ({ stdout, stderr }), waitFor, done };
}

export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, opts).done;
}

/** Run `fn` over `items` with at most `limit` running at once; results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Calls `visit` for every entry under `dir`, depth first (nothing when `dir` is missing). */
function walkTree(dir: string, visit: (p: string, e: fs.Dirent) => void): void {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    visit(p, e);
    if (e.isDirectory()) walkTree(p, visit);
  }
}

/** Relative path → "size mtime" of every file and folder under `dir` (empty when missing). */
export function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  walkTree(dir, (p, e) => {
    const st = fs.statSync(p);
    out.set(path.relative(dir, p) + (e.isDirectory() ? '/' : ''), e.isDirectory() ? 'dir' : `${st.size} ${st.mtimeMs}`);
  });
  return out;
}

/** Relative path → SHA-256 of the bytes of every regular file under `dir` (special files: their kind). */
export function contentSnapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  walkTree(dir, (p, e) => {
    if (!e.isDirectory()) out.set(path.relative(dir, p), e.isFile() ? createHash('sha256').update(fs.readFileSync(p)).digest('hex') : 'special');
  });
  return out;
}

/** Describe what differs between two snapshots (empty string when identical). */
export function snapshotDiff(a: Map<string, string>, b: Map<string, string>): string {
  const lines: string[] = [];
  for (const [k, v] of b) if (a.get(k) !== v) lines.push(`${a.has(k) ? 'changed' : 'added'} ${k}`);
  for (const k of a.keys()) if (!b.has(k)) lines.push(`removed ${k}`);
  return lines.join('\n');
}

/**
 * A tiny training config as YAML: synthetic 8x8x3 data, small-cnn at width 0.25 (about 2 s
 * for 3 epochs on one core). `extra` is merged into the `train:` flow mapping.
 */
export function tinyYaml(runsDir: string, opts: { train?: string; extra?: string; epochs?: number; trainSize?: number } = {}): string {
  return [
    'name: tiny',
    'seed: 3',
    'backend: wasm',
    `runsDir: ${JSON.stringify(runsDir)}`,
    'data:',
    '  dataset: synthetic',
    `  synthetic: {height: 8, width: 8, channels: 3, classes: 4, trainSize: ${opts.trainSize ?? 128}, testSize: 64}`,
    'model: {arch: small-cnn, width: 0.25}',
    `train: {method: ce, epochs: ${opts.epochs ?? 3}, batchSize: 16, evalBatchSize: 64, lr: 0.05, schedule: {type: none}${opts.train ? ', ' + opts.train : ''}}`,
    opts.extra ?? '',
  ].join('\n');
}

/** The run dirs of experiment `name` under `runsDir`. */
export function runDirsOf(runsDir: string, name = 'tiny'): string[] {
  const parent = path.join(runsDir, name);
  if (!fs.existsSync(parent)) return [];
  return fs
    .readdirSync(parent)
    .sort()
    .map((d) => path.join(parent, d));
}

/** The columns that must be identical between an interrupted-and-resumed run and an uninterrupted one. */
export const EXACT_COLUMNS = ['epoch', 'lr', 'train_loss', 'train_acc', 'test_acc', 'nan_skipped', 'ce'] as const;

/** metrics.jsonl rows reduced to EXACT_COLUMNS (timings differ between runs by nature). */
export function exactMetrics(runDir: string): Array<Record<string, unknown>> {
  return readMetrics(runDir).map((r) => Object.fromEntries(EXACT_COLUMNS.map((k) => [k, r[k]])));
}

/** A message printed by the CLI on bad input must not carry a stack trace. */
export function hasStackTrace(text: string): boolean {
  return /\n\s+at .+(\.js|\.ts|<anonymous>|node:)/.test(text);
}
