// The local worker pool shared by `ibrar sweep` (cells) and `ibrar probe-layers --jobs N`
// (candidates): N worker processes of this CLI, each given floor(cores / N) native threads
// (IBRAR_NATIVE_THREADS in its environment), so N runs never oversubscribe the cores.
//
// Workers get an IPC channel to the driver only to notice when it dies: a worker whose driver
// is gone (even by SIGKILL) exits at once (`exitWithParent`), which is safe because every file
// is written atomically, so a killed sweep leaves no orphans training into its cells.
// A stop request (Ctrl-C) is passed on as SIGTERM: workers finish their step, checkpoint and exit.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn, type ChildProcess } from 'child_process';

/**
 * Native threads per worker when the number of workers is not given. Measured with
 * `npm run bench` (bench/sweep.ts, VGG16 w0.25 CE training): on 2 cores, 2 workers × 1 thread
 * gave 1,267 img/s in total against 930 img/s for 1 worker × 2 threads (oneDNN's convolutions
 * and the single-threaded wasm parts scale worse than independent processes), so by default
 * every core runs its own worker.
 */
export const DEFAULT_THREADS_PER_WORKER = 1;

export interface ThreadPlan {
  /** Worker processes. */
  jobs: number;
  /** Native threads of each. */
  threads: number;
  cores: number;
}

/** Cores this process may use (CPU affinity included). */
export function availableCores(): number {
  return Math.max(1, typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
}

/**
 * How to split `cores` among workers: `jobs` when given, else as many workers as fit with
 * DEFAULT_THREADS_PER_WORKER threads each (never more than `tasks`); each worker gets
 * floor(cores / jobs) threads, at least one.
 */
export function planThreads(cores: number, opts: { jobs?: number; tasks?: number } = {}): ThreadPlan {
  const c = Math.max(1, Math.floor(cores));
  const fit = Math.max(1, Math.floor(c / DEFAULT_THREADS_PER_WORKER));
  const jobs = Math.max(1, Math.floor(opts.jobs ?? Math.min(fit, Math.max(1, opts.tasks ?? fit))));
  return { jobs, threads: Math.max(1, Math.floor(c / jobs)), cores: c };
}

export interface PoolTask {
  /** Identifies the task in callbacks (a cell id, a candidate id). */
  key: string;
  /** Arguments to the CLI, e.g. ['sweep', '--cell', '3', DIR]. */
  args: string[];
  /** The worker's stdout and stderr go here (appended). */
  log: string;
}

export interface PoolOptions {
  jobs: number;
  /** Native threads of each worker (IBRAR_NATIVE_THREADS). */
  threads: number;
  /** The next task to start when a worker slot is free; null when there is none right now. */
  next(): PoolTask | null;
  onSpawn?(task: PoolTask, pid: number): void;
  /** A worker ended: its exit code (137 after SIGKILL, 1 when it could not start). */
  onExit(task: PoolTask, code: number): void;
  shouldStop?: () => boolean;
  /** Called about every `tickMs` while workers run (progress displays). */
  onTick?(): void;
  tickMs?: number;
  /** The CLI launcher (default: this package's bin/ibrar.js). */
  cliPath?: string;
  /** Extra environment for the workers. */
  env?: NodeJS.ProcessEnv;
}

export interface PoolOutcome {
  /** A stop was requested: running workers were asked to checkpoint and exit, nothing new started. */
  stopped: boolean;
}

export function defaultCliPath(): string {
  // dist/src/jobs/pool.js → <package>/bin/ibrar.js
  return path.resolve(__dirname, '..', '..', '..', 'bin', 'ibrar.js');
}

/** Runs tasks from `next()` on at most `jobs` worker processes until there are none left. */
export async function runPool(opts: PoolOptions): Promise<PoolOutcome> {
  const cli = opts.cliPath ?? defaultCliPath();
  if (!fs.existsSync(cli)) throw new Error(`worker launcher not found: ${cli}`);
  const jobs = Math.max(1, Math.floor(opts.jobs));
  const running = new Map<string, { task: PoolTask; child: ChildProcess; exit: Promise<number> }>();
  let stopping = false;
  const env = { ...process.env, ...opts.env, IBRAR_NATIVE_THREADS: String(opts.threads) };
  const launch = (task: PoolTask) => {
    fs.mkdirSync(path.dirname(task.log), { recursive: true });
    const fd = fs.openSync(task.log, 'a');
    let child: ChildProcess;
    try {
      child = spawn(process.execPath, [cli, ...task.args], { stdio: ['ignore', fd, fd, 'ipc'], env });
    } finally {
      fs.closeSync(fd);
    }
    const exit = new Promise<number>((resolve) => {
      child.on('exit', (code, signal) => resolve(code ?? (signal === 'SIGKILL' ? 137 : signal === 'SIGTERM' ? 143 : 1)));
      child.on('error', () => resolve(1));
    });
    // The channel only tells the worker that the driver is alive; it must not keep us waiting.
    child.on('error', () => undefined);
    running.set(task.key, { task, child, exit });
    if (child.pid !== undefined) opts.onSpawn?.(task, child.pid);
  };
  const stopAll = () => {
    if (stopping) return;
    stopping = true;
    for (const { child } of running.values()) child.kill('SIGTERM');
  };
  const tickMs = opts.tickMs ?? 200;
  try {
    for (;;) {
      if (opts.shouldStop?.()) stopAll();
      while (!stopping && running.size < jobs) {
        const task = opts.next();
        if (!task) break;
        if (running.has(task.key)) throw new Error(`pool: task ${task.key} is already running`);
        launch(task);
      }
      if (running.size === 0) break;
      const tick = new Promise<null>((r) => setTimeout(() => r(null), tickMs));
      const ended = await Promise.race([...[...running.values()].map((r) => r.exit.then((code) => ({ key: r.task.key, code }))), tick]);
      opts.onTick?.();
      if (!ended) continue;
      const r = running.get(ended.key)!;
      running.delete(ended.key);
      opts.onExit(r.task, ended.code);
    }
  } finally {
    // Only reached with workers still running if a callback threw.
    for (const { child } of running.values()) child.kill('SIGKILL');
  }
  return { stopped: stopping };
}

/**
 * In a worker started by runPool: exit at once when the driver goes away (its IPC channel
 * closes, which also happens when it is SIGKILLed). No-op in a process without the channel.
 */
export function exitWithParent(code = 137): void {
  if (typeof process.send !== 'function') return;
  process.on('disconnect', () => process.exit(code));
  // The channel must not keep a finished worker alive.
  (process as unknown as { channel?: { unref(): void } }).channel?.unref();
}
