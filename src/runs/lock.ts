// An exclusive lock on a run directory, so two processes never train/resume into the same
// run at once. The lock is a file created with O_EXCL ('wx') holding the owner's pid, host
// and a random token. A lock whose owner pid no longer exists on this host is stale and is
// taken over; taking over is itself serialised by a second O_EXCL file so that two
// processes breaking the same stale lock cannot both win.
import * as fs from 'fs';
import * as os from 'os';
import { randomBytes } from 'crypto';
import { readTextBoundedOrNull } from '../engine/safe-read';
import { UserError } from '../errors';
import * as path from 'path';
import { pidAlive, removeStaleTempFiles, tempPathFor } from './atomic';
import { runLayout } from './run-dir';

export interface LockInfo {
  pid: number;
  host: string;
  token: string;
  createdAt: string;
}

export interface RunLock {
  readonly path: string;
  readonly info: LockInfo;
  /** Remove the lock if it is still ours. Idempotent. */
  release(): void;
}

/** An unreadable/empty lock file older than this is treated as stale (crash between create and write, fallback path only). */
const UNREADABLE_GRACE_MS = 5_000;
/** A takeover marker older than this belongs to a process that died mid-takeover. */
const TAKEOVER_STALE_MS = 10_000;

function readLock(file: string): LockInfo | null {
  try {
    // Bounded and regular files only: a pipe or device under the lock's name is "unreadable".
    const v = JSON.parse(readTextBoundedOrNull(file, { maxBytes: 64 * 1024, what: 'run lock' }) ?? '') as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.host === 'string' && typeof v.token === 'string') {
      return { pid: v.pid, host: v.host, token: v.token, createdAt: String(v.createdAt ?? '') };
    }
  } catch {
    // fall through: unreadable
  }
  return null;
}

function ageMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

function tryCreate(file: string, info: LockInfo): boolean {
  // Write the content under a temp name, then hard-link it to the lock name: link() fails
  // with EEXIST like O_EXCL, and the lock appears complete, so a process killed at any
  // moment never leaves a half-written lock that blocks the next --resume.
  removeStaleTempFiles(path.dirname(file), (target) => target === path.basename(file));
  const tmp = tempPathFor(file);
  try {
    fs.writeFileSync(tmp, JSON.stringify(info) + '\n', { flag: 'wx', mode: 0o644 });
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw new UserError(`cannot create the run lock (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file);
  }
  try {
    fs.linkSync(tmp, file);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EXDEV') return tryCreateExclusive(file, info);
    throw new UserError(`cannot create the run lock (${code ?? (err as Error).message})`, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

/** Fallback where hard links are not supported: O_EXCL create, then write. */
function tryCreateExclusive(file: string, info: LockInfo): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw new UserError(`cannot create the run lock (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file);
  }
  try {
    fs.writeSync(fd, JSON.stringify(info) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Why the existing lock cannot be broken, or null when it is stale. */
function liveHolder(file: string, host: string): string | null {
  const held = readLock(file);
  if (!held) {
    if (!fs.existsSync(file)) return null;
    return ageMs(file) > UNREADABLE_GRACE_MS ? null : 'a process that is just taking the lock';
  }
  if (held.host !== host) return `pid ${held.pid} on host ${held.host} (since ${held.createdAt}); ibrar cannot check a process on another host`;
  if (held.pid === process.pid) return `this process (pid ${held.pid}), through another lock handle`;
  if (pidAlive(held.pid)) return `pid ${held.pid} on this host (since ${held.createdAt})`;
  return null;
}

/** Break a stale lock, serialised so that only one process can do it at a time. */
function breakStale(file: string, info: LockInfo): void {
  const marker = `${file}.takeover`;
  if (fs.existsSync(marker)) {
    // A marker left by a process killed mid-takeover: its pid is gone (or it is old).
    const m = readLock(marker);
    const dead = m !== null && m.host === info.host && m.pid !== process.pid && !pidAlive(m.pid);
    if (dead || ageMs(marker) > TAKEOVER_STALE_MS) fs.rmSync(marker, { force: true });
  }
  if (!tryCreate(marker, info)) return; // another process is taking over right now; the caller retries
  try {
    if (liveHolder(file, info.host) === null) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(marker, { force: true });
  }
}

/**
 * Take the exclusive lock of a run directory (given as its path or its RunLayout). Throws a UserError naming the
 * holder when another live process has it. The lock is released by `release()` and, as a
 * fallback, when this process exits normally or through process.exit().
 */
export function acquireRunLock(target: string | { readonly lock: string }): RunLock {
  const file = typeof target === 'string' ? runLayout(target).lock : target.lock;
  const host = os.hostname();
  const info: LockInfo = { pid: process.pid, host, token: randomBytes(8).toString('hex'), createdAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreate(file, info)) return makeHandle(file, info);
    const holder = liveHolder(file, host);
    if (holder !== null) {
      throw new UserError(
        `the run directory is locked by ${holder}: another ibrar process is using it. ` +
          `If no such process is running, delete this lock file and retry.`,
        file,
      );
    }
    breakStale(file, info);
  }
  throw new UserError('could not take the run lock: other processes keep taking it over', file);
}

function makeHandle(file: string, info: LockInfo): RunLock {
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.removeListener('exit', release);
    const held = readLock(file);
    // Only delete our own lock: after a takeover the file may belong to someone else.
    if (held && held.token === info.token) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { path: file, info, release };
}
