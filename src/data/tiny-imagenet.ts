// Tiny ImageNet (the official tiny-imagenet-200 release): 200 classes of 64x64 JPEGs.
//   wnids.txt                         the classes; label = line order
//   words.txt                         optional: wnid <tab> "name, synonym, …"
//   train/<wnid>/images/*.JPEG        500 per class
//   val/images/*.JPEG + val/val_annotations.txt (file <tab> wnid <tab> bbox…): the test split
// (test/ has no labels and is not used.) Decoding 110,000 JPEGs takes a while, so each split
// is decoded once into `<root>/tiny-imagenet/ibrar-cache-v1-<split>.bin` (NHWC pixels, then
// int32 LE labels) with a JSON header that carries a hash of the source list; a dataset that
// changes (files added, removed, replaced, relabelled) no longer matches and is decoded again.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as jpeg from 'jpeg-js';
import { UserError } from '../errors';
import { writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { assertFitsInMemory, makeDirs, openRegularFile, readFileBounded, readTextBounded, MIB } from '../engine/safe-read';
import { exists, MAX_DATA_TEXT_BYTES, readFileOrThrow } from './files';
import type { Split } from './types';

export const TINY_SIDE = 64;
const PIXELS = TINY_SIDE * TINY_SIDE * 3;
export const TINY_OFFICIAL = { classes: 200, trainPerClass: 500, valPerClass: 50 } as const;
export const TINY_FOLDER = 'tiny-imagenet';
const RELEASE_FOLDER = 'tiny-imagenet-200';
const CACHE_VERSION = 1;
const CACHE_FORMAT = 'ibrar-tiny-imagenet-cache';
const MAX_CACHE_HEADER_BYTES = MIB;
/** A 64x64 JPEG is a few KB; anything near this is not one. */
const MAX_JPEG_BYTES = 4 * MIB;

export type TinySplitName = 'train' | 'val';

export const TINY_IMAGENET_HOWTO =
  'ibrar does not download Tiny ImageNet: get ' +
  'http://cs231n.stanford.edu/tiny-imagenet-200.zip and unzip it into <root>/tiny-imagenet/ ' +
  '(giving <root>/tiny-imagenet/tiny-imagenet-200/wnids.txt, train/, val/; the contents of ' +
  'tiny-imagenet-200/ directly in <root>/tiny-imagenet/ work too)';

/** The images of one split, in the order they are decoded, with their labels. */
export interface TinySourceList {
  split: TinySplitName;
  /** Paths relative to the release folder. */
  files: string[];
  labels: Int32Array;
}

export interface TinyLayout {
  /** The release folder (holds wnids.txt). */
  dir: string;
  /** Where the decoded caches live: `<root>/tiny-imagenet/`. */
  cacheDir: string;
  wnids: string[];
  classNames: string[];
}

/** The folder holding wnids.txt: `<root>/tiny-imagenet/tiny-imagenet-200/` or `<root>/tiny-imagenet/`; null if neither. */
export async function findTinyImagenetDir(root: string): Promise<string | null> {
  for (const dir of [path.join(root, TINY_FOLDER, RELEASE_FOLDER), path.join(root, TINY_FOLDER)]) {
    if (await exists(path.join(dir, 'wnids.txt'))) return dir;
  }
  return null;
}

function isJpegName(name: string): boolean {
  return /\.jpe?g$/i.test(name);
}

function sortedNames(names: string[]): string[] {
  return names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Reads wnids.txt (and words.txt for names); a duplicate or malformed wnid is a UserError. */
export async function readTinyLayout(dir: string, root: string): Promise<TinyLayout> {
  const wnidsFile = path.join(dir, 'wnids.txt');
  const wnids: string[] = [];
  const seen = new Set<string>();
  (await readFileOrThrow(wnidsFile, MAX_DATA_TEXT_BYTES, 'class list')).toString('utf8').split(/\r?\n/).forEach((line, i) => {
    const w = line.trim();
    if (w === '') return;
    if (!/^[A-Za-z0-9_-]+$/.test(w)) throw new UserError(`line ${i + 1}: '${w}' is not a wnid (letters, digits, '_' or '-')`, wnidsFile);
    if (seen.has(w)) throw new UserError(`line ${i + 1}: wnid ${w} is listed twice`, wnidsFile);
    seen.add(w);
    wnids.push(w);
  });
  if (wnids.length < 2) throw new UserError(`${wnids.length} wnids; a classification dataset needs at least 2 (the release has 200)`, wnidsFile);
  const names = new Map<string, string>();
  const wordsFile = path.join(dir, 'words.txt');
  if (await exists(wordsFile)) {
    // words.txt covers all of ImageNet (82,115 lines); only our wnids matter. First synonym = name.
    for (const line of (await readFileOrThrow(wordsFile, MAX_DATA_TEXT_BYTES, 'class names file')).toString('utf8').split(/\r?\n/)) {
      const tab = line.indexOf('\t');
      if (tab < 0) continue;
      const w = line.slice(0, tab).trim();
      if (seen.has(w)) names.set(w, line.slice(tab + 1).split(',')[0].trim() || w);
    }
  }
  return { dir, cacheDir: path.join(root, TINY_FOLDER), wnids, classNames: wnids.map((w) => names.get(w) ?? w) };
}

/** train/<wnid>/images/*.JPEG for every wnid, class by class, files in name order. */
export async function listTinyTrain(layout: TinyLayout): Promise<TinySourceList> {
  const trainDir = path.join(layout.dir, 'train');
  if (!(await exists(trainDir))) throw new UserError('no train/ folder (expected train/<wnid>/images/*.JPEG)', layout.dir);
  const known = new Set(layout.wnids);
  for (const e of await fs.promises.readdir(trainDir, { withFileTypes: true })) {
    if (e.isDirectory() && !e.name.startsWith('.') && !known.has(e.name)) {
      throw new UserError(`folder train/${e.name} is not a class in wnids.txt`, path.join(trainDir, e.name));
    }
  }
  const files: string[] = [];
  const labels: number[] = [];
  for (let k = 0; k < layout.wnids.length; k++) {
    const w = layout.wnids[k];
    const imgDir = path.join(trainDir, w, 'images');
    let names: string[];
    try {
      names = await fs.promises.readdir(imgDir);
    } catch {
      throw new UserError(`class ${w} (line ${k + 1} of wnids.txt) has no folder train/${w}/images`, imgDir);
    }
    const jpegs = sortedNames(names.filter(isJpegName));
    if (jpegs.length === 0) throw new UserError(`no JPEG files for class ${w}`, imgDir);
    for (const f of jpegs) {
      files.push(path.join('train', w, 'images', f));
      labels.push(k);
    }
  }
  return { split: 'train', files, labels: Int32Array.from(labels) };
}

/** val/images/*.JPEG labelled by val/val_annotations.txt, in annotation order. */
export async function listTinyVal(layout: TinyLayout): Promise<TinySourceList> {
  const annFile = path.join(layout.dir, 'val', 'val_annotations.txt');
  const imgDir = path.join(layout.dir, 'val', 'images');
  const text = (await readFileOrThrow(annFile, MAX_DATA_TEXT_BYTES, 'annotation file')).toString('utf8');
  let onDisk: string[];
  try {
    onDisk = (await fs.promises.readdir(imgDir)).filter(isJpegName);
  } catch {
    throw new UserError('no val/images folder next to val/val_annotations.txt', imgDir);
  }
  const present = new Set(onDisk);
  const index = new Map(layout.wnids.map((w, i) => [w, i]));
  const files: string[] = [];
  const labels: number[] = [];
  const annotated = new Set<string>();
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === '') return;
    const [file, wnid] = line.split('\t').map((s) => s.trim());
    const where = `line ${i + 1}`;
    if (!file || !wnid) throw new UserError('expected "file<TAB>wnid<TAB>bbox…"', annFile, where);
    const label = index.get(wnid);
    if (label === undefined) throw new UserError(`wnid ${wnid} (for ${file}) is not in wnids.txt`, annFile, where);
    if (annotated.has(file)) throw new UserError(`${file} is annotated twice`, annFile, where);
    if (!present.has(file)) throw new UserError(`${file} is not in val/images`, annFile, where);
    annotated.add(file);
    files.push(path.join('val', 'images', file));
    labels.push(label);
  });
  const unlabelled = onDisk.filter((f) => !annotated.has(f));
  if (unlabelled.length > 0) {
    throw new UserError(`${unlabelled.length} image(s) in val/images have no annotation (first: ${sortedNames(unlabelled)[0]})`, annFile);
  }
  if (files.length === 0) throw new UserError('no annotated validation images', annFile);
  return { split: 'val', files, labels: Int32Array.from(labels) };
}

/**
 * Identifies a split's sources: class list, and per image its path, label, size and mtime.
 * Any change to the files or their labels changes it (so a stale cache is never used).
 */
export function sourceHash(layout: TinyLayout, list: TinySourceList): string {
  const h = createHash('sha256');
  h.update(`${CACHE_FORMAT} v${CACHE_VERSION} ${list.split}\n${layout.wnids.join(' ')}\n`);
  for (let i = 0; i < list.files.length; i++) {
    const st = fs.statSync(path.join(layout.dir, list.files[i]));
    h.update(`${list.files[i]}\t${list.labels[i]}\t${st.size}\t${st.mtimeMs}\n`);
  }
  return h.digest('hex');
}

/** Decodes one 64x64 JPEG (colour or grayscale) into `out` as RGB; errors name the file. */
export function decodeTinyJpeg(buf: Uint8Array, file: string, out: Uint8Array, offset: number): void {
  let img: { width: number; height: number; data: Uint8Array };
  try {
    // Strict decoding and tight limits: a damaged file is an error, not a partly black image.
    img = jpeg.decode(buf, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP: 1, maxMemoryUsageInMB: 64 });
  } catch (err) {
    throw new UserError(`cannot decode this JPEG (${(err as Error).message})`, file);
  }
  if (img.width !== TINY_SIDE || img.height !== TINY_SIDE) {
    throw new UserError(`image is ${img.width}x${img.height}; Tiny ImageNet images are ${TINY_SIDE}x${TINY_SIDE}`, file);
  }
  if (img.data.length !== PIXELS) throw new UserError(`decoder returned ${img.data.length} bytes for a 64x64 RGB image`, file);
  out.set(img.data, offset);
}

export interface CacheHeader {
  format: typeof CACHE_FORMAT;
  version: number;
  split: TinySplitName;
  n: number;
  shape: [number, number, number];
  numClasses: number;
  /** Byte offset of the int32 LE labels in the .bin (after the pixels). */
  labelsOffset: number;
  bytes: number;
  sourceHash: string;
  source: string;
}

export function cachePaths(layout: TinyLayout, split: TinySplitName): { bin: string; json: string } {
  const base = path.join(layout.cacheDir, `ibrar-cache-v${CACHE_VERSION}-${split}`);
  return { bin: `${base}.bin`, json: `${base}.json` };
}

/** The cache of a split if it exists, is complete and was made from exactly these sources. */
function readCache(layout: TinyLayout, list: TinySourceList, hash: string): Split | null {
  const { bin, json } = cachePaths(layout, list.split);
  // A cache that cannot be read as ours (missing, damaged, not a regular file) is rebuilt.
  let header: CacheHeader;
  try {
    header = JSON.parse(readTextBounded(json, { maxBytes: MAX_CACHE_HEADER_BYTES, what: 'cache header' })) as CacheHeader;
  } catch {
    return null;
  }
  const n = list.files.length;
  if (
    header.format !== CACHE_FORMAT ||
    header.version !== CACHE_VERSION ||
    header.sourceHash !== hash ||
    header.n !== n ||
    header.labelsOffset !== n * PIXELS ||
    header.bytes !== n * PIXELS + 4 * n
  ) {
    return null;
  }
  let fd: number;
  try {
    const opened = openRegularFile(bin, { maxBytes: header.bytes, what: 'cache' });
    if (!opened) return null;
    fd = opened.fd;
  } catch {
    return null;
  }
  try {
    if (fs.fstatSync(fd).size !== header.bytes) return null;
    const images = new Uint8Array(n * PIXELS);
    const labelBytes = Buffer.alloc(4 * n);
    readFully(fd, images, 0, bin);
    readFully(fd, labelBytes, header.labelsOffset, bin);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) labels[i] = labelBytes.readInt32LE(4 * i);
    // The hash covers the labels' sources; a mismatch here means the .bin itself was damaged.
    for (let i = 0; i < n; i++) if (labels[i] !== list.labels[i]) return null;
    return { images, labels, n, shape: [TINY_SIDE, TINY_SIDE, 3] };
  } finally {
    fs.closeSync(fd);
  }
}

function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < into.length) {
    // Chunks below 2 GiB: one read call cannot return more.
    const got = fs.readSync(fd, into, done, Math.min(into.length - done, 1 << 30), position + done);
    if (got === 0) throw new UserError(`cache ended after ${done} of ${into.length} bytes`, file);
    done += got;
  }
}

export interface TinyLoadOptions {
  log?: (msg: string) => void;
}

/** One split: from the cache when it matches the sources, else decoded (and cached). */
export async function loadTinySplit(layout: TinyLayout, list: TinySourceList, opts: TinyLoadOptions = {}): Promise<Split> {
  const log = opts.log ?? (() => {});
  const hash = sourceHash(layout, list);
  const cached = readCache(layout, list, hash);
  if (cached) return cached;
  const n = list.files.length;
  log(`decoding ${n} Tiny ImageNet ${list.split} JPEGs (once; cached in ${layout.cacheDir})`);
  // One buffer laid out as the cache file, so writing it needs no second copy of the pixels.
  assertFitsInMemory(n * PIXELS + 4 * n, `storing the ${n} decoded ${list.split} images`, layout.dir);
  const bin = new Uint8Array(n * PIXELS + 4 * n);
  for (let i = 0; i < n; i++) {
    const file = path.join(layout.dir, list.files[i]);
    decodeTinyJpeg(readFileBounded(file, { maxBytes: MAX_JPEG_BYTES, what: 'JPEG image' }), file, bin, i * PIXELS);
    if ((i + 1) % 20000 === 0 && i + 1 < n) log(`  ${i + 1}/${n}`);
  }
  const labelView = new DataView(bin.buffer, bin.byteOffset + n * PIXELS, 4 * n);
  for (let i = 0; i < n; i++) labelView.setInt32(4 * i, list.labels[i], true);
  const header: CacheHeader = {
    format: CACHE_FORMAT,
    version: CACHE_VERSION,
    split: list.split,
    n,
    shape: [TINY_SIDE, TINY_SIDE, 3],
    numClasses: layout.wnids.length,
    labelsOffset: n * PIXELS,
    bytes: bin.length,
    sourceHash: hash,
    source: layout.dir,
  };
  const { bin: binPath, json } = cachePaths(layout, list.split);
  try {
    makeDirs(layout.cacheDir);
    // The old header goes first: a crash between the two writes leaves no header, never a
    // header that vouches for the wrong pixels.
    fs.rmSync(json, { force: true });
    writeFileAtomic(binPath, bin);
    writeJsonAtomic(json, header);
  } catch (err) {
    log(`could not write the Tiny ImageNet cache ${binPath} (${(err as Error).message}); the JPEGs will be decoded again next time`);
  }
  return { images: bin.subarray(0, n * PIXELS), labels: Int32Array.from(list.labels), n, shape: [TINY_SIDE, TINY_SIDE, 3] };
}
