// Crash-safe file replacement: write a temp file in the same directory, fsync it, rename it
// over the target, fsync the directory. A reader sees the old file or the new one, never a
// half-written one, even if the process is killed or the machine loses power mid-write.
// Synchronous on purpose: callers write between training steps and must know it is on disk.
import * as fs from 'fs';
import * as path from 'path';
import { randomBytes } from 'crypto';

/** `.<name>.<pid>.<random>.tmp` next to the target, so the rename never crosses filesystems. */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** The pid embedded in a temp name made by tempPathFor, or null if `name` is not one. */
export function tempFileOwner(name: string): { target: string; pid: number } | null {
  const m = /^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$/.exec(name);
  return m ? { target: m[1], pid: Number(m[2]) } : null;
}

/** fsync a directory so a rename inside it survives a power cut (no-op where unsupported). */
export function fsyncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some platforms/filesystems cannot open or fsync directories; the rename is still atomic.
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

export interface AtomicWriteOptions {
  /** File mode for the new file (default 0o644, before umask). */
  mode?: number;
  /** fsync the file and its directory (default true). */
  fsync?: boolean;
}

/** Replace `target` with `data` atomically (synchronous). */
export function writeFileAtomic(target: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): void {
  const doSync = opts.fsync ?? true;
  const tmp = tempPathFor(target);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.byteLength) off += fs.writeSync(fd, buf, off, buf.byteLength - off);
    if (doSync) fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, target);
  } catch (err) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  if (doSync) fsyncDir(path.dirname(target));
}

/** Replace `target` with pretty-printed JSON (2-space indent, trailing newline). */
export function writeJsonAtomic(target: string, value: unknown, opts: AtomicWriteOptions = {}): void {
  writeFileAtomic(target, JSON.stringify(value, null, 2) + '\n', opts);
}

/** true if a process with this pid exists on this host (EPERM means it exists but is not ours). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete temp files left in `dir` by processes that died mid-write (their pid is gone).
 * `filter` restricts to temp files for some targets. Returns the names removed.
 */
export function removeStaleTempFiles(dir: string, filter: (target: string) => boolean = () => true): string[] {
  const removed: string[] = [];
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const owner = tempFileOwner(name);
    if (!owner || !filter(owner.target)) continue;
    if (owner.pid === process.pid || pidAlive(owner.pid)) continue;
    fs.rmSync(path.join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
