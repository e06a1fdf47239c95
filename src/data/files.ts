// File helpers for the loaders and fetchers: reading (optionally gzipped) files with errors
// that name the file, hashing, and atomic writes (temp file + rename, so a crash never leaves
// a half-written dataset file under its final name).
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { UserError } from '../errors';
import { assertFitsInMemory, formatBytes, MAX_BUFFER_BYTES, MIB, openRegularFile, readFileBoundedAsync, statRegularFile } from '../engine/safe-read';

export function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.promises.access(p);
    return true;
  } catch {
    return false;
  }
}

/** Largest dataset file read into memory: one buffer (4 GiB on 64-bit Node 20). */
export const MAX_DATA_FILE_BYTES = MAX_BUFFER_BYTES;
/** Text files that come with a dataset (class lists, annotations, words.txt: about 2 MB). */
export const MAX_DATA_TEXT_BYTES = 64 * MIB;
/** Deflate cannot expand data by more than ~1032:1, so a larger promise is a lie. */
export const MAX_DEFLATE_RATIO = 1032;

/**
 * A dataset file's bytes, through the bounded reader (src/engine/safe-read.ts): a regular
 * file of at most `maxBytes`, never a pipe or a device; a missing file is a UserError.
 */
export async function readFileOrThrow(file: string, maxBytes = MAX_DATA_FILE_BYTES, what = 'dataset file'): Promise<Buffer> {
  if (!statRegularFile(file, what)) throw new UserError('file not found', file);
  return readFileBoundedAsync(file, { maxBytes, what });
}

/**
 * The first `n` bytes of a regular file (fewer when it is shorter) and its whole size, read
 * before deciding how much of it to read: a header can be checked against the size on disk.
 */
export function readFileHead(file: string, n: number, what = 'dataset file'): Buffer & { size: number } {
  const opened = openRegularFile(file, { maxBytes: MAX_DATA_FILE_BYTES, what });
  if (!opened) throw new UserError('file not found', file);
  try {
    const buf = Buffer.alloc(Math.min(n, opened.size));
    let done = 0;
    while (done < buf.length) {
      const got = fs.readSync(opened.fd, buf, done, buf.length - done, done);
      if (got === 0) break;
      done += got;
    }
    return Object.assign(buf.subarray(0, done), { size: opened.size });
  } catch (err) {
    throw new UserError(`cannot read ${what} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file);
  } finally {
    fs.closeSync(opened.fd);
  }
}

/** Output size a decompressed stream must have, known from its first `headBytes` bytes. */
export interface GunzipExpectation {
  headBytes: number;
  /** The exact size the head promises (may throw a UserError about the head itself). */
  size(head: Buffer): number;
}

function corruptGzip(file: string, bytes: number, err: unknown): UserError {
  return new UserError(
    `truncated or corrupt gzip data (expected a complete gzip stream of ${bytes} bytes; zlib says: ${(err as Error).message})`,
    file,
  );
}

/**
 * Gunzips `buf` as a stream with a byte budget: at most `maxBytes` of output, or, with
 * `expect`, exactly the size its own header promises (checked against what `buf` can inflate
 * to before anything is allocated). Inflating stops as soon as the output passes the budget,
 * so a decompression bomb costs the budget, not the bomb. A stream that ends short is
 * returned short (the format's parser says what is missing); a damaged stream is a UserError.
 */
export async function gunzipBounded(buf: Uint8Array, file: string, maxBytes: number, expect?: GunzipExpectation): Promise<Buffer> {
  const inflater = zlib.createGunzip({ chunkSize: 1 << 20 });
  inflater.end(buf);
  const head: Buffer[] = [];
  let headLen = 0;
  let out: Buffer | null = null;
  let budget = maxBytes;
  let got = 0;
  const tooMuch = (limit: number, why: string) =>
    new UserError(`gzip data decompresses to more than the ${formatBytes(limit)} ${why}; stopped there`, file);
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      if (out === null) {
        head.push(chunk);
        headLen += chunk.length;
        if (expect && headLen < expect.headBytes) continue;
        if (expect) {
          const first = Buffer.concat(head);
          const size = expect.size(first);
          if (size > buf.length * MAX_DEFLATE_RATIO + 1024) {
            throw new UserError(`the header promises ${formatBytes(size)}, more than ${buf.length} compressed bytes can inflate to (at most ${MAX_DEFLATE_RATIO}:1)`, file);
          }
          assertFitsInMemory(size, 'storing the decompressed data its header promises', file);
          budget = size;
          if (first.length > budget) throw tooMuch(budget, 'its header promises');
          out = Buffer.allocUnsafe(budget);
          first.copy(out, 0);
          got = first.length;
        } else {
          if (headLen > budget) throw tooMuch(budget, 'a file of this kind can have');
          continue;
        }
        head.length = 0;
        continue;
      }
      if (got + chunk.length > budget) throw tooMuch(budget, 'its header promises');
      chunk.copy(out, got);
      got += chunk.length;
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw corruptGzip(file, buf.length, err);
  } finally {
    inflater.destroy();
  }
  if (out === null) return Buffer.concat(head);
  return got === out.length ? out : out.subarray(0, got);
}

/** Gunzips when the bytes start with the gzip magic (bounded: see gunzipBounded). */
export async function maybeGunzip(buf: Buffer, file: string, maxBytes = MAX_DATA_FILE_BYTES, expect?: GunzipExpectation): Promise<Buffer> {
  if (!isGzip(buf)) return buf;
  return gunzipBounded(buf, file, maxBytes, expect);
}

/** Reads a file, gunzipping it when it is gzip-compressed. */
export async function readMaybeGz(file: string, expect?: GunzipExpectation): Promise<Buffer> {
  return maybeGunzip(await readFileOrThrow(file), file, MAX_DATA_FILE_BYTES, expect);
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** SHA-256 of a regular file, streamed (datasets can be larger than we want in memory twice). */
export async function sha256File(file: string, maxBytes = MAX_DATA_FILE_BYTES): Promise<string> {
  const opened = openRegularFile(file, { maxBytes, what: 'file to hash' });
  if (!opened) throw new UserError('file not found', file);
  const h = createHash('sha256');
  if (opened.size === 0) {
    fs.closeSync(opened.fd);
    return h.digest('hex');
  }
  // The stream owns the descriptor from here (closes it); it reads what the checked size says.
  for await (const chunk of fs.createReadStream('', { fd: opened.fd, start: 0, end: opened.size - 1 })) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** A temp name next to `finalPath`, so the later rename stays on one filesystem. */
export function tempPathFor(finalPath: string): string {
  return path.join(
    path.dirname(finalPath),
    `.${path.basename(finalPath)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`,
  );
}

/**
 * Files written under temp names and moved into place together once all are checked:
 * either every file appears under its final name or none does.
 */
export class StagedFiles {
  private staged: { tmp: string; final: string }[] = [];

  async write(finalPath: string, data: Uint8Array | string): Promise<string> {
    const tmp = tempPathFor(finalPath);
    this.staged.push({ tmp, final: finalPath });
    await fs.promises.writeFile(tmp, data);
    return tmp;
  }

  /** Reserves a temp path that the caller fills itself (e.g. by streaming a download). */
  reserve(finalPath: string): string {
    const tmp = tempPathFor(finalPath);
    this.staged.push({ tmp, final: finalPath });
    return tmp;
  }

  async commit(): Promise<string[]> {
    for (const s of this.staged) await fs.promises.rename(s.tmp, s.final);
    const done = this.staged.map((s) => s.final);
    this.staged = [];
    return done;
  }

  async discard(): Promise<void> {
    for (const s of this.staged) await fs.promises.rm(s.tmp, { force: true });
    this.staged = [];
  }
}
