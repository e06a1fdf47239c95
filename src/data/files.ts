// File helpers for the loaders and fetchers: reading (optionally gzipped) files with errors
// that name the file, hashing, and atomic writes (temp file + rename, so a crash never leaves
// a half-written dataset file under its final name).
import { createHash, randomBytes } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
import * as zlib from 'zlib';
import { UserError } from '../errors';

const gunzipAsync = promisify(zlib.gunzip);

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

export async function readFileOrThrow(file: string): Promise<Buffer> {
  try {
    return await fs.promises.readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError('file not found', file);
    throw new UserError(`cannot read file (${code ?? (err as Error).message})`, file);
  }
}

/** Gunzips when the bytes start with the gzip magic; a damaged stream is a UserError. */
export async function maybeGunzip(buf: Buffer, file: string): Promise<Buffer> {
  if (!isGzip(buf)) return buf;
  try {
    return await gunzipAsync(buf);
  } catch (err) {
    throw new UserError(
      `truncated or corrupt gzip data (expected a complete gzip stream of ${buf.length} bytes; zlib says: ${(err as Error).message})`,
      file,
    );
  }
}

/** Reads a file, gunzipping it when it is gzip-compressed. */
export async function readMaybeGz(file: string): Promise<Buffer> {
  return maybeGunzip(await readFileOrThrow(file), file);
}

export function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

/** SHA-256 of a file, streamed (datasets can be larger than we want in memory twice). */
export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(file)) h.update(chunk as Buffer);
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
