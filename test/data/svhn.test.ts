// SVHN from MAT-files: scipy-written fixtures and files from the test's own writer
// (compressed and not, both byte orders), the column-major → NHWC transposition, label
// 10 → 0, the extra split, verify, fetch, and every way a file can be broken.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { validateConfig } from '../../src/config/load';
import { fetchDataset, loadDataset, MissingDataError, verifyDataset } from '../../src/data';
import { formatVerifyReport } from '../../src/data/verify';
import { parseMat } from '../../src/data/mat';
import { readSvhnFiles } from '../../src/data/svhn';
import { UserError } from '../../src/errors';
import { REPO_ROOT } from '../helpers/golden';
import { runCli } from '../reliability/cli';
import { dataCfg, rejectsUserError, rmDir, tmpDir } from './helpers';
import { compressed, header, matFile, matrix, MI, MX, svhnPixel, svhnVars, tag } from './mat-writer';

const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'mat');

/** Every pixel of `images` (NHWC) against the pattern, image k being pattern image first + k. */
function assertPattern(images: Uint8Array, n: number, first = 0, at = 0): void {
  for (let k = 0; k < n; k++)
    for (let h = 0; h < 32; h++)
      for (let w = 0; w < 32; w++)
        for (let c = 0; c < 3; c++) {
          const got = images[(((at + k) * 32 + h) * 32 + w) * 3 + c];
          if (got !== svhnPixel(h, w, c, first + k)) assert.fail(`image ${at + k} (h ${h}, w ${w}, c ${c}): ${got} != ${svhnPixel(h, w, c, first + k)}`);
        }
}

const tmpFiles: string[] = [];
function writeTmp(buf: Buffer): string {
  const dir = tmpDir('svhn-file');
  tmpFiles.push(dir);
  const f = path.join(dir, 'train_32x32.mat');
  fs.writeFileSync(f, buf);
  return f;
}
after(() => tmpFiles.forEach(rmDir));

function writeSvhn(root: string, files: Record<string, Buffer>): string {
  const dir = path.join(root, 'svhn');
  fs.mkdirSync(dir, { recursive: true });
  for (const [name, buf] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), buf);
  return dir;
}

test('scipy.io.savemat files (compressed with double y, plain with uint8 y) read exactly', async () => {
  const comp = await readSvhnFiles([path.join(FIXTURES, 'scipy-svhn-compressed.mat')]);
  assert.equal(comp.n, 3);
  assert.deepEqual(comp.shape, [32, 32, 3]);
  assert.deepEqual(Array.from(comp.labels), [0, 1, 7]); // y = 10, 1, 7
  assertPattern(comp.images, 3);
  const plain = await readSvhnFiles([path.join(FIXTURES, 'scipy-svhn-plain.mat')]);
  assert.deepEqual(Array.from(plain.labels), [3, 0, 9]); // y = 3, 10, 9
  assertPattern(plain.images, 3);
  // The files also hold a char array 'note', which is skipped.
  const vars = await parseMat(fs.readFileSync(path.join(FIXTURES, 'scipy-svhn-plain.mat')), 'plain.mat', { only: ['X', 'y'] });
  assert.deepEqual([...vars.keys()].sort(), ['X', 'y']);
  assert.deepEqual(vars.get('X')!.dims, [32, 32, 3, 3]);
  assert.equal(vars.get('y')!.className, 'uint8');
});

test('own writer: little- and big-endian, compressed or not, y as double, uint8 or int32: the same images', async () => {
  const labels = [10, 3, 1, 10, 9];
  for (const le of [true, false]) {
    for (const compress of [false, true]) {
      for (const storage of [MI.DOUBLE, MI.UINT8, MI.INT32]) {
        const what = `${le ? 'LE' : 'BE'} ${compress ? 'compressed' : 'plain'} y storage ${storage}`;
        const vars = await parseMat(matFile(svhnVars(labels, 0, storage), { le, compress }), what);
        const y = vars.get('y')!;
        assert.equal(y.className, 'double', what);
        assert.deepEqual(Array.from(y.data), labels, what);
        const root = tmpDir('svhn-rw');
        try {
          writeSvhn(root, { 'train_32x32.mat': matFile(svhnVars(labels, 0, storage), { le, compress }) });
          const s = await readSvhnFiles([path.join(root, 'svhn', 'train_32x32.mat')]);
          assert.deepEqual(Array.from(s.labels), [0, 3, 1, 0, 9], what);
          assertPattern(s.images, 5);
        } finally {
          rmDir(root);
        }
      }
    }
  }
});

test('a compressed variable larger than one inflate chunk (1 MiB) streams in whole; a longer stream is refused', async () => {
  const labels = Array.from({ length: 400 }, (_, i) => (i % 10) + 1);
  const s = await readSvhnFiles([writeTmp(matFile(svhnVars(labels, 0), { compress: true }))]);
  assert.equal(s.n, 400);
  assert.deepEqual(Array.from(s.labels.subarray(8, 12)), [9, 0, 1, 2]);
  assertPattern(s.images, 400);
  const x = matrix(svhnVars(labels, 0)[0], true);
  const z = zlib.deflateSync(Buffer.concat([x, Buffer.alloc(3 << 20)]));
  await rejectsUserError(parseMat(Buffer.concat([header(true), tag(MI.COMPRESSED, z.length, true), z]), 'big.mat'), ['big.mat: byte 128', 'inflates beyond the 1228864 bytes']);
});

test('loadDataset: train and test through the registry; data.svhnExtra appends extra_32x32.mat', async () => {
  const root = tmpDir('svhn-load');
  try {
    writeSvhn(root, {
      'train_32x32.mat': matFile(svhnVars([1, 2, 10], 0), { compress: true }),
      'test_32x32.mat': matFile(svhnVars([5, 10], 100)),
      'extra_32x32.mat': matFile(svhnVars([7, 8, 9, 10], 200), { compress: true }),
    });
    const ds = await loadDataset(dataCfg({ dataset: 'svhn', root }), 0);
    assert.equal(ds.numClasses, 10);
    assert.deepEqual(ds.shape, [32, 32, 3]);
    assert.deepEqual(ds.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.deepEqual(Array.from(ds.train.labels), [1, 2, 0]);
    assert.deepEqual(Array.from(ds.test.labels), [5, 0]);
    assertPattern(ds.test.images, 2, 100);
    const cfg = validateConfig({ name: 's', data: { dataset: 'svhn', root, svhnExtra: true }, model: { arch: 'small-cnn' } });
    const withExtra = await loadDataset(cfg.data, 0);
    assert.equal(withExtra.train.n, 7);
    assert.deepEqual(Array.from(withExtra.train.labels), [1, 2, 0, 7, 8, 9, 0]);
    assertPattern(withExtra.train.images, 3, 0, 0);
    assertPattern(withExtra.train.images, 4, 200, 3);
    assert.ok(withExtra.source[0].includes('train_32x32.mat + extra_32x32.mat'));
    const held = await loadDataset(dataCfg({ dataset: 'svhn', root, splitFromTest: 1 }), 0);
    assert.deepEqual([held.train.n, held.test.n, held.test.labels[0]], [1, 1, 0]);
  } finally {
    rmDir(root);
  }
});

test('config: data.svhnExtra defaults to false and is refused for other datasets', () => {
  assert.equal(validateConfig({ name: 's', data: { dataset: 'svhn' }, model: { arch: 'vgg16' } }).data.svhnExtra, false);
  assert.throws(
    () => validateConfig({ name: 's', data: { dataset: 'cifar10', svhnExtra: true }, model: { arch: 'vgg16' } }),
    (e: Error) => e instanceof UserError && /data\.svhnExtra/.test(e.message) && /svhn only/.test(e.message),
  );
});

test('missing files point to `ibrar data fetch svhn`; fetch says where to get them and is a UserError', async () => {
  const root = tmpDir('svhn-miss');
  try {
    writeSvhn(root, { 'test_32x32.mat': matFile(svhnVars([1], 0)) });
    const err = await rejectsUserError(loadDataset(dataCfg({ dataset: 'svhn', root }), 0), ['train_32x32.mat', `ibrar data fetch svhn --dir ${root}`]);
    assert.ok(err instanceof MissingDataError);
    assert.deepEqual((err as MissingDataError).missing, ['train_32x32.mat']);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'svhn', root, svhnExtra: true }), 0), ['extra_32x32.mat']);
    await rejectsUserError(fetchDataset('svhn' as 'cifar10', root), ['http://ufldl.stanford.edu/housenumbers/', path.join(path.resolve(root), 'svhn'), 'train_32x32.mat']);
  } finally {
    rmDir(root);
  }
});

test('CLI: `ibrar data fetch svhn` exits 2 with the official URL and the target folder', async () => {
  const root = tmpDir('svhn-cli');
  try {
    const r = await runCli(['data', 'fetch', 'svhn', '--dir', root]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /http:\/\/ufldl\.stanford\.edu\/housenumbers\//);
    assert.ok(r.stderr.includes(path.join(root, 'svhn')), r.stderr);
  } finally {
    rmDir(root);
  }
});

/** Expect `parseMat(buf)` to fail with a UserError naming the file and every part. */
async function rejectsMat(buf: Buffer, parts: string[], only?: string[]): Promise<UserError> {
  return rejectsUserError(parseMat(buf, '/data/svhn/bad.mat', { only }), ['/data/svhn/bad.mat', ...parts]);
}

test('broken files: truncation, lying lengths and inflation beyond the promise are UserErrors with the byte offset', async () => {
  const good = matFile(svhnVars([1, 2], 0));
  // Cut inside X's data: the element at byte 128 claims more than the file has.
  await rejectsMat(good.subarray(0, 2000), ['byte 128', 'claims', 'truncated']);
  // A lying dimension: X says 3 images but holds 2.
  const lie = Buffer.from(good);
  lie.writeInt32LE(3, 128 + 8 + 16 + 8 + 12);
  await rejectsMat(lie, ["variable 'X' is 32x32x3x3", '6144 bytes']);
  // Compressed: bytes after the promised element (a stream that inflates beyond its header).
  const x = matrix(svhnVars([1], 0)[0], true);
  const z = zlib.deflateSync(Buffer.concat([x, Buffer.alloc(5000)]));
  const beyond = Buffer.concat([header(true), tag(MI.COMPRESSED, z.length, true), z]);
  await rejectsMat(beyond, ['byte 128', 'inflates beyond']);
  // Compressed: a header claiming more bytes than the dimensions need.
  const fat = Buffer.concat([x, Buffer.alloc(64)]);
  fat.writeUInt32LE(fat.length - 8, 4);
  await rejectsMat(Buffer.concat([header(true), compressed(fat, true)]), ['byte 128', 'more than its dimensions need']);
  // A decompression bomb's promise: 32x32x3x100000 (307 MB) from a few hundred compressed bytes.
  const bomb = matrix({ name: 'X', classId: MX.UINT8, dims: [32, 32, 3, 100000], storage: MI.UINT8, values: [] }, true);
  bomb.writeUInt32LE(bomb.length - 8 + 307200000, 4);
  bomb.writeUInt32LE(307200000, 8 + 16 + 24 + 8 + 4);
  await rejectsMat(Buffer.concat([header(true), compressed(bomb, true)]), ['byte 128', 'compressed bytes can inflate to']);
  // Compressed: a truncated zlib stream (tag length adjusted so the file itself is whole).
  const zc = zlib.deflateSync(matrix(svhnVars([1], 0)[0], true));
  const cut = zc.subarray(0, zc.length - 40);
  await rejectsMat(Buffer.concat([header(true), tag(MI.COMPRESSED, cut.length, true), cut]), ['byte 128', 'corrupt compressed data']);
  // Compressed: a stream that ends before the promised bytes (valid zlib, short content).
  const short = Buffer.from(matrix(svhnVars([1], 0)[0], true).subarray(0, 3000));
  await rejectsMat(Buffer.concat([header(true), compressed(short, true)]), ['byte 128', 'inflates to 3000 of the']);
});

test('broken files: not a MAT-file, v7.3, wrong shape, bad labels, missing variables', async () => {
  await rejectsMat(Buffer.alloc(300, 7), ['byte 126', "no 'MI' endian indicator"]);
  await rejectsMat(Buffer.alloc(60, 1), ['too short']);
  const v73 = Buffer.alloc(1024);
  v73.write('MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan 1 00:00:00 2024 HDF5 schema 1.00 .', 0, 'latin1');
  await rejectsMat(v73, ['v7.3 (HDF5)']);
  const root = tmpDir('svhn-bad');
  try {
    const dir = writeSvhn(root, { 'test_32x32.mat': matFile(svhnVars([1, 11], 0)) });
    const file = path.join(dir, 'test_32x32.mat');
    await rejectsUserError(readSvhnFiles([file]), [file, "label 2 of 'y' is 11", '10 means the digit 0']);
    fs.writeFileSync(file, matFile(svhnVars([0], 0)));
    await rejectsUserError(readSvhnFiles([file]), ["label 1 of 'y' is 0"]);
    const [xv, yv] = svhnVars([1, 2], 0);
    fs.writeFileSync(file, matFile([{ ...xv, dims: [32, 32, 6, 1] }, yv]));
    await rejectsUserError(readSvhnFiles([file]), [file, "'X' is 32x32x6x1", '32x32x3xN']);
    fs.writeFileSync(file, matFile([xv, { ...yv, dims: [1, 1], values: [1] }]));
    await rejectsUserError(readSvhnFiles([file]), ["'y' is 1x1; expected 2x1"]);
    fs.writeFileSync(file, matFile([xv]));
    await rejectsUserError(readSvhnFiles([file]), [file, "no variable 'y'"]);
    fs.writeFileSync(file, matFile([{ name: 'X', classId: MX.CHAR, dims: [1, 2], storage: MI.UINT8, values: [65, 66] }, yv]));
    await rejectsUserError(readSvhnFiles([file]), ["'X' is a MATLAB char array"]);
    // Through the registry, a broken file is the same UserError (not a missing-data hint).
    fs.writeFileSync(file, matFile(svhnVars([1], 0)));
    fs.writeFileSync(path.join(dir, 'train_32x32.mat'), matFile(svhnVars([1], 0)).subarray(0, 500));
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'svhn', root }), 0), [path.join(dir, 'train_32x32.mat'), 'byte 128']);
  } finally {
    rmDir(root);
  }
});

test('verify svhn: counts, shapes, per-class counts, official counts and MD5 status', async () => {
  const root = tmpDir('svhn-ver');
  try {
    let r = await verifyDataset('svhn', root);
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.includes('train split: missing train_32x32.mat')));
    writeSvhn(root, {
      'train_32x32.mat': matFile(svhnVars([1, 1, 10, 4], 0), { compress: true }),
      'test_32x32.mat': matFile(svhnVars([2, 10], 0)),
    });
    r = await verifyDataset('svhn', root);
    assert.equal(r.ok, false);
    assert.deepEqual(r.splits.map((s) => [s.name, s.n, s.shape.join('x'), s.official]), [
      ['train', 4, '32x32x3', 73257],
      ['test', 2, '32x32x3', 26032],
    ]);
    assert.deepEqual(r.splits[0].perClass, [1, 2, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert.ok(r.problems.includes('train split: 4 images; the official release has 73257'));
    const f = r.files.find((x) => x.file === 'train_32x32.mat')!;
    assert.equal(f.status, 'mismatch');
    assert.equal(f.expected, 'e26dedcc434d2e4c54c9b2d4a06d8373');
    assert.match(f.md5!, /^[0-9a-f]{32}$/);
    assert.match(formatVerifyReport(r), /train: 4 images 32x32x3 \(train_32x32\.mat, official 73257\)/);
  } finally {
    rmDir(root);
  }
});
