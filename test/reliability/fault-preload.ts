// Fault injection for the reliability tests, at the file-system boundary and nowhere in src/.
// It wraps the synchronous `fs` calls that change files (the only ones ibrar's run dirs,
// checkpoints and metrics use) and, for calls on paths under one folder:
//   - kill mode: SIGKILLs the process at the N-th such call. A write that is hit writes half
//     its bytes first, so the file on disk is torn exactly as by a kill mid-write;
//   - enospc mode: makes writes fail with a real-looking ENOSPC after writing part of the
//     data, as a full disk does;
//   - read-only mode: every call that would change something under the folder fails with
//     EROFS, as on a read-only mount (tests run as root, which ignores permission bits).
// Used as a preload in child processes (`node -r fault-preload.js bin/ibrar.js ...`, driven by
// the IBRAR_FAULT_* variables below, which only this test file reads) or installed in-process
// with installFsFaults().
import * as fs from 'fs';
import * as path from 'path';

export interface FsFaultOptions {
  /** Only calls on paths under this folder count (and fail). */
  dir: string;
  /** SIGKILL the process at this 1-based count of mutating calls. */
  killAt?: number;
  /** Return true to make this write (of `bytes` bytes to `file`) fail with ENOSPC. */
  failWrite?: (file: string, bytes: number) => boolean;
  /** Called with the path of every mutating call under `dir`. */
  trace?: (file: string) => void;
  /** Every change under `dir` fails with EROFS (removing what is absent, making what exists: as the OS does). */
  readOnly?: boolean;
}

export interface FsFaults {
  /** Mutating calls under `dir` so far. */
  count(): number;
  /** Put the original functions back. */
  uninstall(): void;
}

type AnyFn = (...args: any[]) => any;
/** closeSync is wrapped only to forget fds; it never counts or fails. */
const realCloseSync = fs.closeSync;
const MUTATING = ['openSync', 'writeSync', 'fsyncSync', 'renameSync', 'linkSync', 'rmSync', 'unlinkSync', 'copyFileSync', 'mkdirSync', 'appendFileSync', 'writeFileSync', 'ftruncateSync'] as const;

function isWriteFlag(flags: unknown): boolean {
  if (flags === undefined) return false;
  if (typeof flags === 'number') return (flags & (fs.constants.O_WRONLY | fs.constants.O_RDWR)) !== 0;
  return /[wa+]/.test(String(flags));
}

export function installFsFaults(opts: FsFaultOptions): FsFaults {
  const root = path.resolve(opts.dir) + path.sep;
  const under = (p: unknown): p is string => typeof p === 'string' && path.resolve(p).startsWith(root);
  const fdPaths = new Map<number, string>();
  const original: Partial<Record<(typeof MUTATING)[number], AnyFn>> = {};
  // The module object itself: `import * as fs` gives a read-only view of it, and src/ reads
  // its functions through such views at call time, so patching the module reaches src/.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const f = require('fs') as Record<string, AnyFn>;
  for (const name of MUTATING) original[name] = f[name];
  let n = 0;

  const hit = (): boolean => ++n === opts.killAt;
  const tick = (): void => {
    if (hit()) process.kill(process.pid, 'SIGKILL');
  };
  /** Trace only calls that succeeded: a failed mkdir (EEXIST) or open ('wx') wrote nothing. */
  const traced = <T>(files: unknown[], result: T): T => {
    for (const file of files) if (under(file)) opts.trace?.(path.resolve(file));
    return result;
  };
  const enospc = (syscall: string): NodeJS.ErrnoException =>
    Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}`), { code: 'ENOSPC', errno: -28, syscall });
  const erofs = (syscall: string, p: unknown): NodeJS.ErrnoException =>
    Object.assign(new Error(`EROFS: read-only file system, ${syscall} '${String(p)}'`), { code: 'EROFS', errno: -30, syscall, path: String(p) });
  /** In read-only mode: throw EROFS for a change under `dir` (not for removing what is absent or making what exists). */
  const readOnly = (syscall: string, p: unknown, second?: unknown): void => {
    if (!opts.readOnly || !(under(p) || under(second))) return;
    if ((syscall === 'rm' || syscall === 'unlink') && !fs.existsSync(p as string)) return;
    if (syscall === 'mkdir' && fs.existsSync(p as string)) return;
    throw erofs(syscall, p);
  };

  f.openSync = function (p: unknown, flags?: unknown, ...rest: unknown[]) {
    const watched = under(p) && isWriteFlag(flags);
    if (watched) readOnly('open', p);
    if (watched) tick();
    const fd = original.openSync!.call(fs, p, flags, ...rest) as number;
    if (under(p)) fdPaths.set(fd, path.resolve(p));
    return watched ? traced([p], fd) : fd;
  };
  f.writeSync = function (fd: number, data: unknown, ...rest: unknown[]) {
    const file = fdPaths.get(fd);
    if (file === undefined) return original.writeSync!.call(fs, fd, data, ...rest);
    const isStr = typeof data === 'string';
    const len = isStr ? Buffer.byteLength(data as string) : typeof rest[1] === 'number' ? (rest[1] as number) : (data as Uint8Array).byteLength - ((rest[0] as number) ?? 0);
    const torn = (): number =>
      isStr
        ? original.writeSync!.call(fs, fd, (data as string).slice(0, Math.floor((data as string).length / 2)))
        : original.writeSync!.call(fs, fd, data, (rest[0] as number) ?? 0, Math.floor(len / 2));
    if (opts.failWrite?.(file, len)) {
      torn();
      throw enospc('write');
    }
    if (hit()) {
      torn();
      process.kill(process.pid, 'SIGKILL');
    }
    return traced([file], original.writeSync!.call(fs, fd, data, ...rest));
  };
  f.closeSync = function (fd: number) {
    fdPaths.delete(fd);
    return realCloseSync.call(fs, fd);
  };
  for (const name of ['fsyncSync', 'ftruncateSync'] as const) {
    f[name] = function (fd: number, ...rest: unknown[]) {
      if (fdPaths.has(fd)) tick();
      return original[name]!.call(fs, fd, ...rest);
    };
  }
  for (const name of ['renameSync', 'linkSync', 'rmSync', 'unlinkSync', 'copyFileSync', 'mkdirSync'] as const) {
    f[name] = function (p: unknown, ...rest: unknown[]) {
      const second = name === 'renameSync' || name === 'linkSync' || name === 'copyFileSync' ? rest[0] : undefined;
      readOnly(name.replace(/Sync$/, ''), p, second);
      if (under(p) || under(second)) tick();
      return traced([p, second], original[name]!.call(fs, p, ...rest));
    };
  }
  for (const name of ['appendFileSync', 'writeFileSync'] as const) {
    f[name] = function (p: unknown, data: unknown, ...rest: unknown[]) {
      readOnly('open', p);
      if (under(p)) {
        if (opts.failWrite?.(path.resolve(p), Buffer.byteLength(data as string))) throw enospc('write');
        tick();
      }
      return traced([p], original[name]!.call(fs, p, data, ...rest));
    };
  }
  return {
    count: () => n,
    uninstall() {
      for (const name of MUTATING) f[name] = original[name]!;
      f.closeSync = realCloseSync;
    },
  };
}

// Preload mode: configured by the environment of a child process started by the tests.
//   IBRAR_FAULT_DIR          the folder whose files count (required)
//   IBRAR_FAULT_KILL_AT      SIGKILL at this call
//   IBRAR_FAULT_COUNT_FILE   write the number of calls here at exit
//   IBRAR_FAULT_ENOSPC_FROM  writes into checkpoints/ fail with ENOSPC from this (1-based) one on
//   IBRAR_FAULT_ENOSPC_IN    the folder name whose writes count for ENOSPC (default checkpoints)
//   IBRAR_FAULT_ENOSPC_MATCH only writes to files whose name matches this regular expression count
//   IBRAR_FAULT_READONLY     1: every change under IBRAR_FAULT_DIR fails with EROFS
//   IBRAR_FAULT_TRACE        write the paths touched, one a line, here at exit
//   IBRAR_FAULT_KILL_AT_TURN SIGKILL at this (1-based) setImmediate turn: ibrar yields one after
//                            every training step, evaluation batch and attack iteration, so
//                            this lands in compute at a point fixed by the code, not the clock
//   IBRAR_FAULT_TURN_FILE    write the number of setImmediate turns here at exit
const turnKill = process.env.IBRAR_FAULT_KILL_AT_TURN ? Number(process.env.IBRAR_FAULT_KILL_AT_TURN) : undefined;
if (turnKill !== undefined || process.env.IBRAR_FAULT_TURN_FILE) {
  let turns = 0;
  const real = global.setImmediate;
  const counted = ((cb: (...a: unknown[]) => void, ...args: unknown[]) => {
    turns++;
    if (turnKill !== undefined && turns >= turnKill) process.kill(process.pid, 'SIGKILL');
    return real(cb, ...args);
  }) as typeof setImmediate;
  global.setImmediate = Object.assign(counted, { __promisify__: real.__promisify__ });
  if (process.env.IBRAR_FAULT_TURN_FILE) process.on('exit', () => fs.writeFileSync(process.env.IBRAR_FAULT_TURN_FILE!, String(turns)));
}
const dir = process.env.IBRAR_FAULT_DIR;
if (dir) {
  const env = process.env;
  const killAt = env.IBRAR_FAULT_KILL_AT ? Number(env.IBRAR_FAULT_KILL_AT) : undefined;
  const enospcMatch = env.IBRAR_FAULT_ENOSPC_MATCH ? new RegExp(env.IBRAR_FAULT_ENOSPC_MATCH) : null;
  const enospcFrom = env.IBRAR_FAULT_ENOSPC_FROM ? Number(env.IBRAR_FAULT_ENOSPC_FROM) : enospcMatch ? 1 : undefined;
  const enospcIn = env.IBRAR_FAULT_ENOSPC_IN ?? 'checkpoints';
  let ckptWrites = 0;
  const touched = new Set<string>();
  const faults = installFsFaults({
    dir,
    killAt,
    readOnly: env.IBRAR_FAULT_READONLY === '1',
    failWrite:
      enospcFrom === undefined
        ? undefined
        : (file) => file.split(path.sep).includes(enospcIn) && (!enospcMatch || enospcMatch.test(path.basename(file))) && ++ckptWrites >= enospcFrom,
    trace: env.IBRAR_FAULT_TRACE ? (file) => touched.add(file) : undefined,
  });
  process.on('exit', () => {
    if (env.IBRAR_FAULT_COUNT_FILE) fs.writeFileSync(env.IBRAR_FAULT_COUNT_FILE, String(faults.count()));
    if (env.IBRAR_FAULT_TRACE) fs.writeFileSync(env.IBRAR_FAULT_TRACE, [...touched].join('\n'));
  });
}
