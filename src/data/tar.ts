// A minimal streaming reader for (gzipped) tar archives such as npm package tarballs, so
// fetching needs no system `tar`. Handles ustar names with prefix, GNU long names ('L') and
// pax 'path' records; only regular files are written, and never outside `dest`.
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { UserError } from '../errors';
import { makeDirs, statRegularFile } from '../engine/safe-read';

const BLOCK = 512;

function cString(buf: Buffer, start: number, len: number): string {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end >= 0 && end < start + len ? end : start + len);
}

function parseOctal(buf: Buffer, start: number, len: number, file: string): number {
  // GNU base-256 for large sizes: high bit of the first byte set.
  if (buf[start] & 0x80) {
    let v = buf[start] & 0x7f;
    for (let i = 1; i < len; i++) v = v * 256 + buf[start + i];
    return v;
  }
  const s = cString(buf, start, len).trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new UserError(`corrupt tar header: bad octal field "${s}"`, file);
  return parseInt(s, 8);
}

function checksumOk(header: Buffer): boolean {
  const stored = parseInt(cString(header, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i];
  return stored === sum;
}

function safeJoin(dest: string, name: string, file: string): string {
  const norm = path.posix.normalize(name.replace(/\\/g, '/'));
  if (norm.startsWith('/') || norm === '..' || norm.startsWith('../') || /^[A-Za-z]:/.test(norm)) {
    throw new UserError(`archive entry "${name}" would be written outside the target folder`, file);
  }
  return path.join(dest, ...norm.split('/'));
}

function paxPath(data: Buffer): string | null {
  // Records: "<len> <key>=<value>\n".
  let pos = 0;
  let found: string | null = null;
  while (pos < data.length) {
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = parseInt(data.toString('utf8', pos, sp), 10);
    if (!(len > 0)) break;
    const rec = data.toString('utf8', sp + 1, pos + len - 1);
    const eq = rec.indexOf('=');
    if (eq > 0 && rec.slice(0, eq) === 'path') found = rec.slice(eq + 1);
    pos += len;
  }
  return found;
}

export interface ExtractOptions {
  /** Entry names (as in the archive) to write; others are skipped. Default: all files. */
  filter?: (name: string) => boolean;
  /** Called with compressed bytes read so far and the archive size. */
  onProgress?: (done: number, total: number) => void;
}

/** Extracts a .tgz (or plain .tar) into `dest`; returns the entry names written. */
export async function extractTar(archive: string, dest: string, opts: ExtractOptions = {}): Promise<string[]> {
  const st = statRegularFile(archive, 'archive');
  if (!st) throw new UserError('file not found', archive);
  const total = st.size;
  const head = Buffer.alloc(2);
  const fd = await fs.promises.open(archive, 'r');
  try {
    await fd.read(head, 0, 2, 0);
  } finally {
    await fd.close();
  }
  // Attach the progress listener only once the stream is piped: a 'data' listener starts the
  // flow, and chunks read before the pipe exists would be lost.
  const raw = fs.createReadStream(archive);
  let readBytes = 0;
  const gz = head.length === 2 && head[0] === 0x1f && head[1] === 0x8b;
  const stream: NodeJS.ReadableStream = gz ? raw.pipe(zlib.createGunzip()) : raw;
  if (gz) raw.on('error', (e) => (stream as zlib.Gunzip).destroy(e));
  raw.on('data', (c) => {
    readBytes += (c as Buffer).length;
    opts.onProgress?.(readBytes, total);
  });

  const written: string[] = [];
  let pending: Buffer = Buffer.alloc(0);
  // State: reading a header, or copying `remaining` bytes of an entry (then `padding`).
  let remaining = 0;
  let padding = 0;
  let out: fs.promises.FileHandle | null = null;
  let collect: Buffer[] | null = null; // for pax / GNU long-name records
  let collectKind = '';
  let nextName: string | null = null;
  let ended = false;
  let current = '';

  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      let pos = 0;
      while (!ended) {
        if (remaining > 0) {
          const take = Math.min(remaining, pending.length - pos);
          if (take === 0) break;
          const piece = pending.subarray(pos, pos + take);
          if (out) await out.write(piece);
          else if (collect) collect.push(Buffer.from(piece));
          pos += take;
          remaining -= take;
          if (remaining > 0) break;
          if (out) {
            await out.close();
            out = null;
            written.push(current);
          }
          if (collect) {
            const data = Buffer.concat(collect);
            nextName = collectKind === 'L' ? cString(data, 0, data.length) : paxPath(data) ?? nextName;
            collect = null;
          }
        }
        if (padding > 0) {
          const take = Math.min(padding, pending.length - pos);
          pos += take;
          padding -= take;
          if (padding > 0) break;
        }
        if (pending.length - pos < BLOCK) break;
        const header = pending.subarray(pos, pos + BLOCK);
        pos += BLOCK;
        if (header.every((b) => b === 0)) {
          ended = true;
          break;
        }
        if (!checksumOk(header)) throw new UserError(`corrupt tar header at byte ${readBytes} (checksum mismatch)`, archive);
        const type = String.fromCharCode(header[156] || 0x30);
        const size = parseOctal(header, 124, 12, archive);
        const prefix = cString(header, 345, 155);
        let name = cString(header, 0, 100);
        if (header.toString('latin1', 257, 262) === 'ustar' && prefix) name = prefix + '/' + name;
        if (nextName !== null && type !== 'L' && type !== 'x') {
          name = nextName;
          nextName = null;
        }
        remaining = size;
        padding = (BLOCK - (size % BLOCK)) % BLOCK;
        if (type === 'L' || type === 'x') {
          collect = [];
          collectKind = type;
        } else if ((type === '0' || type === '7') && (!opts.filter || opts.filter(name))) {
          const target = safeJoin(dest, name, archive);
          makeDirs(path.dirname(target));
          out = await fs.promises.open(target, 'w');
          current = name;
          if (size === 0) {
            await out.close();
            out = null;
            written.push(name);
          }
        }
        // Other entry types (directories, links, global pax) and filtered files: skip data.
      }
      pending = pending.subarray(pos);
      if (ended) break;
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read archive (${(err as Error).message})`, archive);
  } finally {
    if (out) await out.close();
    raw.destroy();
  }
  if (!ended && (remaining > 0 || padding > 0 || pending.length > 0)) {
    throw new UserError('archive is truncated (it ends inside an entry)', archive);
  }
  return written;
}
