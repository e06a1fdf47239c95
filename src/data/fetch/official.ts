// Downloads from the official dataset servers, when any network reaches them. Every file is
// checked against its published SHA-256 before it gets its final name.
import { makeDirs } from '../../engine/safe-read';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../../errors';
import { StagedFiles } from '../files';
import type { KnownHash } from '../checksums';
import type { ProgressFn } from '../types';

/** The first mirror that answers within `timeoutMs`, or null (no network / all down). */
export async function probeMirrors(mirrors: string[], probeFile: string, timeoutMs: number): Promise<string | null> {
  const tries = mirrors.map(async (m) => {
    const res = await fetch(m + probeFile, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return m;
  });
  try {
    return await Promise.any(tries);
  } catch {
    return null;
  }
}

async function download(url: string, dest: string, onBytes: (n: number, total: number) => void): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(10 * 60 * 1000) });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status} for ${url}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const h = createHash('sha256');
  const fh = await fs.promises.open(dest, 'w');
  let done = 0;
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      h.update(chunk);
      await fh.write(chunk);
      done += chunk.length;
      onBytes(done, total);
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** Downloads `files` from `mirror` into `outDir`, all-or-nothing, verifying each hash. */
export async function downloadVerified(
  mirror: string,
  files: string[],
  hashes: Record<string, KnownHash>,
  outDir: string,
  onProgress: ProgressFn,
  log: (msg: string) => void,
): Promise<string[]> {
  makeDirs(outDir);
  const staged = new StagedFiles();
  try {
    for (const f of files) {
      const tmp = staged.reserve(path.join(outDir, f));
      log(`downloading ${mirror}${f}`);
      const got = await download(mirror + f, tmp, (d, t) => onProgress(d, t, `download ${f}`));
      const want = hashes[f]?.sha256;
      if (want && got !== want) {
        throw new UserError(`downloaded ${f} has SHA-256 ${got}, expected the official ${want}; nothing was written`, mirror + f);
      }
    }
    return await staged.commit();
  } finally {
    await staged.discard();
  }
}
