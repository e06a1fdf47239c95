// Bounded reads of files ibrar does not control: every reader (config YAML, checkpoints and
// their sidecars, evaluation and probe state, metrics, dataset files, caches) goes through
// here, so no input can hang the process or make it allocate without limit.
//
// The rules, checked in this order:
//   1. The path (after following symlinks) must be a regular file. A FIFO, a character or
//      block device (/dev/zero, /dev/stdin), a socket or a directory is refused with a
//      UserError naming the path: reading a pipe can block forever (and a blocked read
//      ignores SIGTERM), reading /dev/zero never ends.
//   2. Its size must be at most what the format allows (`maxBytes`), checked from fstat
//      before a byte is read or a buffer is allocated.
//   3. It must hold exactly the bytes its size says: a file that yields more than its stat
//      size (a file still being written, or a pseudo-file such as those in /proc and /sys,
//      which report size 0 or 4096 whatever they hold) is refused, so a read never goes
//      past the size that was checked in 2.
// The file is opened with O_NONBLOCK and checked again on the open descriptor, so a path
// swapped for a pipe between the stat and the open cannot block either.
// This module sits at the bottom of the source tree (it imports only `errors`), so every layer
// can use it.
import * as fs from 'fs';
import * as path from 'path';
import { constants as bufferConstants } from 'buffer';
import { UserError } from '../errors';

export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

/** JSON state and record files ibrar writes itself (probe state, diagnostics, t-SNE, monitor records): far below this. */
export const MAX_STATE_FILE_BYTES = 256 * MIB;

/** The largest buffer this runtime can allocate (4 GiB on 64-bit Node 20). */
export const MAX_BUFFER_BYTES: number = bufferConstants.MAX_LENGTH;

export interface BoundedReadOptions {
  /** Largest size the format allows; a bigger file is refused before anything is read. */
  maxBytes: number;
  /** What the file is, for messages: 'config', 'checkpoint sidecar', 'dataset file', … */
  what: string;
}

/** Words for what a non-regular path is. */
export function fileKind(st: fs.Stats): string {
  if (st.isFIFO()) return 'a named pipe (FIFO)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isDirectory()) return 'a directory';
  if (st.isFile()) return 'a regular file';
  return 'a special file';
}

function notRegular(file: string, what: string, st: fs.Stats): UserError {
  return new UserError(
    `${what} is ${fileKind(st)}, not a regular file; ibrar reads only regular files (a pipe or a device can block or never end)`,
    file,
  );
}

function code(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

function isMissing(err: unknown): boolean {
  const c = (err as NodeJS.ErrnoException).code;
  return c === 'ENOENT' || c === 'ENOTDIR';
}

/** A byte count for messages: "123 bytes", with GiB/MiB where that reads better. */
export function formatBytes(n: number): string {
  if (n >= GIB) return `${n} bytes (${(n / GIB).toFixed(1)} GiB)`;
  if (n >= 10 * MIB) return `${n} bytes (${(n / MIB).toFixed(0)} MiB)`;
  return `${n} bytes`;
}

/**
 * The stat of `file` (symlinks followed) when it is a regular file; null when it does not
 * exist; a UserError naming the path for anything else (pipes, devices, sockets, folders).
 */
export function statRegularFile(file: string, what: string): fs.Stats | null {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if (isMissing(err)) return null;
    throw new UserError(`cannot read ${what} (${code(err)})`, file);
  }
  if (!st.isFile()) throw notRegular(file, what, st);
  return st;
}

function tooBig(file: string, what: string, size: number, max: number): UserError {
  return new UserError(`${what} is ${formatBytes(size)}; a valid one is at most ${formatBytes(max)}`, file);
}

/**
 * Opens a regular file for reading (never blocking, even if the path was swapped for a pipe
 * after the stat) and checks rules 1 and 2. Returns null when the file does not exist.
 * The caller owns the descriptor.
 */
export function openRegularFile(file: string, opts: BoundedReadOptions): { fd: number; size: number } | null {
  const st = statRegularFile(file, opts.what);
  if (!st) return null;
  if (st.size > opts.maxBytes) throw tooBig(file, opts.what, st.size, opts.maxBytes);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOCTTY);
  } catch (err) {
    if (isMissing(err)) return null;
    throw new UserError(`cannot read ${opts.what} (${code(err)})`, file);
  }
  try {
    const fst = fs.fstatSync(fd);
    if (!fst.isFile()) throw notRegular(file, opts.what, fst);
    if (fst.size > opts.maxBytes) throw tooBig(file, opts.what, fst.size, opts.maxBytes);
    return { fd, size: fst.size };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

function sizeMismatch(file: string, what: string, size: number, more: boolean): UserError {
  return new UserError(
    more
      ? `${what} holds more bytes than its size on disk (${size}) says: a file still being written, or a pseudo-file (such as those in /proc or /sys) whose size means nothing; refusing to read further`
      : `${what} ended before its size on disk (${size} bytes): it is being changed, or it is a pseudo-file (such as those in /proc or /sys)`,
    file,
  );
}

/** Reads exactly `size` bytes of an open regular file, then checks that nothing follows (rule 3). */
function readExactly(fd: number, size: number, file: string, what: string): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let done = 0;
  try {
    while (done < size) {
      // One read call returns at most ~2 GiB.
      const got = fs.readSync(fd, buf, done, Math.min(size - done, 1 << 30), done);
      if (got === 0) throw sizeMismatch(file, what, size, false);
      done += got;
    }
    if (fs.readSync(fd, Buffer.allocUnsafe(1), 0, 1, size) !== 0) throw sizeMismatch(file, what, size, true);
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read ${what} (${code(err)})`, file);
  }
  return buf;
}

/** The bytes of a regular file of at most `maxBytes`; null when it does not exist. */
export function readFileBoundedOrNull(file: string, opts: BoundedReadOptions): Buffer | null {
  const opened = openRegularFile(file, opts);
  if (!opened) return null;
  try {
    return readExactly(opened.fd, opened.size, file, opts.what);
  } finally {
    fs.closeSync(opened.fd);
  }
}

/** The bytes of a regular file of at most `maxBytes`; a missing file is a UserError. */
export function readFileBounded(file: string, opts: BoundedReadOptions): Buffer {
  const buf = readFileBoundedOrNull(file, opts);
  if (!buf) throw new UserError(`${opts.what} not found`, file);
  return buf;
}

/** readFileBounded as UTF-8 text. */
export function readTextBounded(file: string, opts: BoundedReadOptions): string {
  return readFileBounded(file, opts).toString('utf8');
}

/** readFileBoundedOrNull as UTF-8 text. */
export function readTextBoundedOrNull(file: string, opts: BoundedReadOptions): string | null {
  const buf = readFileBoundedOrNull(file, opts);
  return buf ? buf.toString('utf8') : null;
}

/**
 * readFileBounded without blocking the event loop (dataset files are large): the same checks,
 * the reads on libuv's pool.
 */
export async function readFileBoundedAsync(file: string, opts: BoundedReadOptions): Promise<Buffer> {
  const opened = openRegularFile(file, opts);
  if (!opened) throw new UserError(`${opts.what} not found`, file);
  const { fd, size } = opened;
  const read = (buf: Buffer, off: number, len: number, pos: number) =>
    new Promise<number>((resolve, reject) => fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
  try {
    const buf = Buffer.allocUnsafe(size);
    let done = 0;
    while (done < size) {
      const got = await read(buf, done, Math.min(size - done, 1 << 30), done);
      if (got === 0) throw sizeMismatch(file, opts.what, size, false);
      done += got;
    }
    if ((await read(Buffer.allocUnsafe(1), 0, 1, size)) !== 0) throw sizeMismatch(file, opts.what, size, true);
    return buf;
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read ${opts.what} (${code(err)})`, file);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Refuses a path that exists but is not a regular file, before it is opened for appending or
 * handed to a writer that opens it itself (opening a FIFO for writing blocks until a reader
 * comes; writing to a device goes nowhere). A missing path is fine: it will be created.
 */
export function checkWritableFile(file: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    if (isMissing(err)) {
      // A dangling symlink would be followed by open(O_CREAT) to wherever it points.
      let link: fs.Stats | null = null;
      try {
        link = fs.lstatSync(file);
      } catch {
        // absent: fine
      }
      if (link?.isSymbolicLink()) throw new UserError(`${what} is a symbolic link to a missing file; refusing to write through it`, file);
      return;
    }
    throw new UserError(`cannot write ${what} (${code(err)})`, file);
  }
  if (!st.isFile()) {
    throw new UserError(`${what} is ${fileKind(st)}, not a regular file; ibrar writes only regular files (a pipe or a device can block or swallow the data)`, file);
  }
}

/**
 * Opens a regular file for appending (created if missing) without blocking, and refuses a
 * pipe, device or socket found there. The caller owns the descriptor.
 */
export function openAppend(file: string, what: string): number {
  checkWritableFile(file, what);
  const c = fs.constants;
  const fd = fs.openSync(file, c.O_WRONLY | c.O_APPEND | c.O_CREAT | c.O_NONBLOCK | c.O_NOCTTY, 0o644);
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new UserError(`${what} is ${fileKind(st)}, not a regular file; ibrar writes only regular files`, file);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  return fd;
}

/** Appends `text` to a regular file (created if missing) through openAppend. */
export function appendRegular(file: string, text: string, what: string): void {
  const fd = openAppend(file, what);
  try {
    const buf = Buffer.from(text, 'utf8');
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
  } catch (err) {
    // write(fd) errors (ENOSPC...) carry no path; callers report which file it was.
    (err as NodeJS.ErrnoException).path ??= file;
    throw err;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * `mkdir -p`, one component at a time. Node's own recursive mkdirSync never returns for a
 * path under /proc (mkdir there fails with ENOENT although the parent exists, and it retries
 * the parent forever, ignoring SIGTERM); here every component is made once, and the first
 * failure is thrown as the errno error it is (ENOENT, ENOTDIR, EACCES, EROFS, ENOSPC…), for
 * the caller to report. A component that exists must be a directory.
 */
export function makeDirs(dir: string): void {
  const missing: string[] = [];
  let cur = path.resolve(dir);
  for (;;) {
    let st: fs.Stats | null = null;
    try {
      st = fs.statSync(cur);
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
    if (st) {
      if (!st.isDirectory()) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${cur}'`), { code: 'ENOTDIR', syscall: 'mkdir', path: cur });
      break;
    }
    missing.push(cur);
    const parent = path.dirname(cur);
    if (parent === cur) break;
    cur = parent;
  }
  for (const d of missing.reverse()) {
    try {
      fs.mkdirSync(d);
    } catch (err) {
      // Made meanwhile by another process: fine if it is a directory.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST' && fs.statSync(d).isDirectory()) continue;
      throw err;
    }
  }
}

/**
 * A folder ibrar keeps files in (a run dir, its checkpoints/ or eval/): when it exists it must
 * be a directory (after following symlinks). Returns whether it exists.
 */
export function checkDirectory(dir: string, what: string): boolean {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if (isMissing(err)) return false;
    throw new UserError(`cannot open ${what} (${code(err)})`, dir);
  }
  if (!st.isDirectory()) throw new UserError(`${what} is ${fileKind(st)}, not a directory`, dir);
  return true;
}

/**
 * Refuses an allocation of `bytes` that cannot succeed (over the runtime's largest buffer),
 * before it is tried: a header that promises more data than fits is bad input, not a crash.
 */
export function assertFitsInMemory(bytes: number, what: string, file?: string, where?: string): void {
  if (!(bytes <= MAX_BUFFER_BYTES)) {
    throw new UserError(
      `${what} needs ${Number.isFinite(bytes) ? formatBytes(bytes) : 'an unbounded number of bytes'} in memory; ibrar holds it in one buffer, and at most ${formatBytes(MAX_BUFFER_BYTES)} fit`,
      file,
      where,
    );
  }
}
