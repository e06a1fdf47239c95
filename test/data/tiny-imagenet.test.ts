// Tiny ImageNet on a small fake release in the official layout: JPEG decoding (colour and a
// one-component grayscale file from libjpeg-turbo's cjpeg), label order, the decoded cache
// (reuse and every kind of invalidation), layout errors naming the file, verify, fetch, and
// two training steps of a 64x64 VGG16 through the library API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as jpeg from 'jpeg-js';
import { validateConfig } from '../../src/config/load';
import { fetchDataset, loadDataset, MissingDataError, trainBatches, verifyDataset } from '../../src/data';
import { formatVerifyReport } from '../../src/data/verify';
import { cachePaths, readTinyLayout, type CacheHeader } from '../../src/data/tiny-imagenet';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { tf } from '../../src/engine/tf';
import { buildModel } from '../../src/models/registry';
import { TrainStepper } from '../../src/train/step';
import { REPO_ROOT } from '../helpers/golden';
import { runCli } from '../reliability/cli';
import { dataCfg, rejectsUserError, rmDir, tmpDir } from './helpers';

const GRAY_JPEG = path.join(REPO_ROOT, 'test', 'fixtures', 'jpeg', 'gray-64.jpg');
/** The 8x8-block pattern the grayscale fixture was made from (exact at quality 100). */
const grayValue = (y: number, x: number) => (((y >> 3) * 23 + (x >> 3) * 9 + 40) % 256);
/** Colour image `id`: constant 8x8 blocks, so the JPEG round trip is within ±1 of it. */
const colorValue = (id: number, y: number, x: number, c: number) => (((y >> 3) * 29 + (x >> 3) * 11 + c * 70 + id * 17 + 5) % 256);

const WNIDS = ['n01443537', 'n01629819', 'n01641577'];

function colorJpeg(id: number, w = 64, h = 64): Buffer {
  const data = Buffer.alloc(w * h * 4);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) data[(y * w + x) * 4 + c] = colorValue(id, y, x, c);
      data[(y * w + x) * 4 + 3] = 255;
    }
  return jpeg.encode({ data, width: w, height: h }, 100).data;
}

interface Fake {
  dir: string;
  /** Train image ids in expected order (class by class, names sorted); 'gray' for the fixture. */
  train: { file: string; id: number | 'gray'; label: number }[];
  val: { file: string; id: number; label: number }[];
}

/**
 * The official layout with 3 classes: train 2 (+1 grayscale for class 1) per class, file names
 * written out of order; val 2 per class, annotations in a mixed order.
 */
function writeFake(root: string, opts: { nested?: boolean } = {}): Fake {
  const dir = opts.nested === false ? path.join(root, 'tiny-imagenet') : path.join(root, 'tiny-imagenet', 'tiny-imagenet-200');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'wnids.txt'), WNIDS.join('\n') + '\n');
  fs.writeFileSync(
    path.join(dir, 'words.txt'),
    ['n00001740\tentity', 'n01443537\tgoldfish, Carassius auratus', 'n01629819\tEuropean fire salamander, Salamandra salamandra', 'n01641577\tbullfrog, Rana catesbeiana'].join('\n') + '\n',
  );
  const train: Fake['train'] = [];
  let id = 0;
  WNIDS.forEach((w, k) => {
    const imgDir = path.join(dir, 'train', w, 'images');
    fs.mkdirSync(imgDir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'train', w, `${w}_boxes.txt`), `${w}_0.JPEG\t0\t0\t63\t63\n`);
    // Written 1 then 0: the loader sorts names, so _0 comes first.
    const ids = [id++, id++];
    fs.writeFileSync(path.join(imgDir, `${w}_1.JPEG`), colorJpeg(ids[1]));
    fs.writeFileSync(path.join(imgDir, `${w}_0.JPEG`), colorJpeg(ids[0]));
    train.push({ file: `${w}_0.JPEG`, id: ids[0], label: k }, { file: `${w}_1.JPEG`, id: ids[1], label: k });
    if (k === 1) {
      fs.copyFileSync(GRAY_JPEG, path.join(imgDir, `${w}_2.JPEG`));
      train.push({ file: `${w}_2.JPEG`, id: 'gray', label: k });
    }
  });
  const valDir = path.join(dir, 'val', 'images');
  fs.mkdirSync(valDir, { recursive: true });
  const val: Fake['val'] = [];
  const order = [2, 0, 1, 1, 0, 2];
  order.forEach((k, i) => {
    const file = `val_${i}.JPEG`;
    fs.writeFileSync(path.join(valDir, file), colorJpeg(100 + i));
    val.push({ file, id: 100 + i, label: k });
  });
  fs.writeFileSync(path.join(dir, 'val', 'val_annotations.txt'), val.map((v) => `${v.file}\t${WNIDS[v.label]}\t0\t3\t60\t62`).join('\n') + '\n');
  fs.mkdirSync(path.join(dir, 'test', 'images'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'test', 'images', 'test_0.JPEG'), colorJpeg(999));
  return { dir, train, val };
}

function imageOf(images: Uint8Array, i: number): Uint8Array {
  return images.subarray(i * 64 * 64 * 3, (i + 1) * 64 * 64 * 3);
}

/** Pixels of image `i` against the decoder's own output for that file and the intended pattern. */
function assertImage(images: Uint8Array, i: number, file: string, id: number | 'gray'): void {
  const got = imageOf(images, i);
  const ref = jpeg.decode(fs.readFileSync(file), { useTArray: true, formatAsRGBA: false });
  assert.deepEqual(Buffer.from(got), Buffer.from(ref.data), `image ${i} (${path.basename(file)}) differs from its decode`);
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 64; x++)
      for (let c = 0; c < 3; c++) {
        const v = got[(y * 64 + x) * 3 + c];
        if (id === 'gray') {
          if (v !== grayValue(y, x)) assert.fail(`gray image ${i} (${y},${x},${c}): ${v} != ${grayValue(y, x)}`);
        } else if (Math.abs(v - colorValue(id, y, x, c)) > 1) {
          assert.fail(`image ${i} (${y},${x},${c}): ${v} vs pattern ${colorValue(id, y, x, c)}`);
        }
      }
}

test('the official layout: pixels, grayscale → RGB, label order, class names, val annotations', async () => {
  const root = tmpDir('tin');
  try {
    const fake = writeFake(root);
    const logs: string[] = [];
    const ds = await loadDataset(dataCfg({ dataset: 'tiny-imagenet', root }), 0, { log: (m) => logs.push(m) });
    assert.equal(ds.name, 'tiny-imagenet');
    assert.equal(ds.numClasses, 3);
    assert.deepEqual(ds.shape, [64, 64, 3]);
    assert.deepEqual(ds.classNames, ['goldfish', 'European fire salamander', 'bullfrog']);
    assert.equal(ds.train.n, 7);
    assert.deepEqual(Array.from(ds.train.labels), fake.train.map((t) => t.label));
    assert.deepEqual(Array.from(ds.train.labels), [0, 0, 1, 1, 1, 2, 2]);
    fake.train.forEach((t, i) => assertImage(ds.train.images, i, path.join(fake.dir, 'train', WNIDS[t.label], 'images', t.file), t.id));
    assert.equal(ds.test.n, 6);
    assert.deepEqual(Array.from(ds.test.labels), [2, 0, 1, 1, 0, 2]);
    fake.val.forEach((v, i) => assertImage(ds.test.images, i, path.join(fake.dir, 'val', 'images', v.file), v.id));
    assert.ok(logs.some((m) => m.includes('decoding 7 Tiny ImageNet train JPEGs')), logs.join('\n'));
    // The release's contents directly in <root>/tiny-imagenet/ work the same, without words.txt.
    const root2 = tmpDir('tin-flat');
    try {
      const flat = writeFake(root2, { nested: false });
      fs.rmSync(path.join(flat.dir, 'words.txt'));
      const ds2 = await loadDataset(dataCfg({ dataset: 'tiny-imagenet', root: root2 }), 0);
      assert.deepEqual(ds2.classNames, WNIDS);
      assert.deepEqual(Buffer.from(ds2.train.images), Buffer.from(ds.train.images));
    } finally {
      rmDir(root2);
    }
  } finally {
    rmDir(root);
  }
});

test('cache: written once with a header, reused, and rebuilt when files, labels or classes change', async () => {
  const root = tmpDir('tin-cache');
  try {
    const fake = writeFake(root);
    const cfg = dataCfg({ dataset: 'tiny-imagenet', root });
    const first = await loadDataset(cfg, 0);
    const layout = await readTinyLayout(fake.dir, root);
    const paths = cachePaths(layout, 'train');
    assert.equal(paths.bin, path.join(root, 'tiny-imagenet', 'ibrar-cache-v1-train.bin'));
    const header = JSON.parse(fs.readFileSync(paths.json, 'utf8')) as CacheHeader;
    assert.equal(header.n, 7);
    assert.deepEqual(header.shape, [64, 64, 3]);
    assert.equal(header.numClasses, 3);
    assert.equal(header.labelsOffset, 7 * 12288);
    assert.equal(header.bytes, 7 * 12288 + 28);
    assert.match(header.sourceHash, /^[0-9a-f]{64}$/);
    const bin = fs.readFileSync(paths.bin);
    assert.equal(bin.length, header.bytes);
    assert.deepEqual(Buffer.from(bin.subarray(0, 7 * 12288)), Buffer.from(first.train.images));
    assert.deepEqual(Array.from({ length: 7 }, (_, i) => bin.readInt32LE(7 * 12288 + 4 * i)), [0, 0, 1, 1, 1, 2, 2]);
    assert.ok(fs.existsSync(cachePaths(layout, 'val').json));

    // Reuse: mark the cached pixels; the next load returns the marks (so it read the cache).
    const marked = Buffer.from(bin);
    marked.fill(7, 0, 12288);
    fs.writeFileSync(paths.bin, marked);
    const logs: string[] = [];
    const again = await loadDataset(cfg, 0, { log: (m) => logs.push(m) });
    assert.ok(imageOf(again.train.images, 0).every((v) => v === 7));
    assert.deepEqual(logs, []);

    const rebuilt = async (what: string): Promise<Awaited<ReturnType<typeof loadDataset>>> => {
      const l: string[] = [];
      const ds = await loadDataset(cfg, 0, { log: (m) => l.push(m) });
      assert.ok(l.some((m) => m.includes('decoding')), `${what}: expected a fresh decode`);
      return ds;
    };
    // A new training image: rebuilt, and the marks are gone.
    const extra = path.join(fake.dir, 'train', WNIDS[2], 'images', `${WNIDS[2]}_7.JPEG`);
    fs.writeFileSync(extra, colorJpeg(50));
    let ds = await rebuilt('added file');
    assert.equal(ds.train.n, 8);
    assertImage(ds.train.images, 0, path.join(fake.dir, 'train', WNIDS[0], 'images', `${WNIDS[0]}_0.JPEG`), fake.train[0].id);
    assertImage(ds.train.images, 7, extra, 50);
    // A replaced image (different content): rebuilt with the new pixels.
    const replaced = path.join(fake.dir, 'train', WNIDS[0], 'images', `${WNIDS[0]}_1.JPEG`);
    fs.writeFileSync(replaced, colorJpeg(60));
    ds = await rebuilt('replaced file');
    assertImage(ds.train.images, 1, replaced, 60);
    // A relabelled validation image.
    const ann = path.join(fake.dir, 'val', 'val_annotations.txt');
    fs.writeFileSync(ann, fs.readFileSync(ann, 'utf8').replace(`val_0.JPEG\t${WNIDS[2]}`, `val_0.JPEG\t${WNIDS[1]}`));
    ds = await rebuilt('relabelled val');
    assert.deepEqual(Array.from(ds.test.labels), [1, 0, 1, 1, 0, 2]);
    // A removed image.
    fs.rmSync(extra);
    ds = await rebuilt('removed file');
    assert.equal(ds.train.n, 7);
    // A damaged cache of the right size but wrong labels is not trusted either.
    const b2 = fs.readFileSync(paths.bin);
    b2.writeInt32LE(2, 7 * 12288);
    fs.writeFileSync(paths.bin, b2);
    ds = await rebuilt('damaged labels');
    assert.equal(ds.train.labels[0], 0);
    // A truncated cache file is not trusted.
    fs.truncateSync(paths.bin, 1000);
    ds = await rebuilt('truncated cache');
    assert.equal(fs.statSync(paths.bin).size, 7 * 12288 + 28);
    // Classes in another order: the same label sequence, but class n01641577's images first.
    fs.writeFileSync(path.join(fake.dir, 'wnids.txt'), [...WNIDS].reverse().join('\n'));
    ds = await rebuilt('reordered classes');
    assert.deepEqual(Array.from(ds.train.labels), [0, 0, 1, 1, 1, 2, 2]);
    assertImage(ds.train.images, 0, path.join(fake.dir, 'train', WNIDS[2], 'images', `${WNIDS[2]}_0.JPEG`), fake.train[5].id);
    assert.deepEqual(Array.from(ds.test.labels), [1, 2, 1, 1, 2, 0]);
  } finally {
    rmDir(root);
  }
});

test('layout errors name the file: wnids.txt, class folders, annotations, JPEG size and decoding', async () => {
  const root = tmpDir('tin-bad');
  try {
    const cfg = dataCfg({ dataset: 'tiny-imagenet', root });
    const missing = await rejectsUserError(loadDataset(cfg, 0), ['wnids.txt', `ibrar data fetch tiny-imagenet --dir ${root}`]);
    assert.ok(missing instanceof MissingDataError);
    const fake = writeFake(root);
    const load = () => loadDataset(cfg, 0);

    const wnidsFile = path.join(fake.dir, 'wnids.txt');
    fs.writeFileSync(wnidsFile, [...WNIDS, 'n09999999'].join('\n'));
    await rejectsUserError(load, [path.join(fake.dir, 'train', 'n09999999', 'images'), 'class n09999999 (line 4 of wnids.txt)']);
    fs.writeFileSync(wnidsFile, [...WNIDS, WNIDS[0]].join('\n'));
    await rejectsUserError(load, [wnidsFile, 'line 4', 'listed twice']);
    fs.writeFileSync(wnidsFile, WNIDS.slice(0, 2).join('\n'));
    await rejectsUserError(load, [path.join(fake.dir, 'train', WNIDS[2]), 'not a class in wnids.txt']);
    fs.writeFileSync(wnidsFile, WNIDS.join('\n'));

    const ann = path.join(fake.dir, 'val', 'val_annotations.txt');
    const annText = fs.readFileSync(ann, 'utf8');
    fs.writeFileSync(ann, annText.replace(`val_3.JPEG\t${WNIDS[1]}`, 'val_3.JPEG\tn00000001'));
    await rejectsUserError(load, [ann, 'line 4', 'wnid n00000001 (for val_3.JPEG) is not in wnids.txt']);
    fs.writeFileSync(ann, annText + `val_9.JPEG\t${WNIDS[0]}\t0\t0\t1\t1\n`);
    await rejectsUserError(load, [ann, 'line 7', 'val_9.JPEG is not in val/images']);
    fs.writeFileSync(ann, annText.split('\n').slice(1).join('\n'));
    await rejectsUserError(load, [ann, '1 image(s) in val/images have no annotation (first: val_0.JPEG)']);
    fs.writeFileSync(ann, annText);

    const small = path.join(fake.dir, 'train', WNIDS[1], 'images', `${WNIDS[1]}_1.JPEG`);
    const saved = fs.readFileSync(small);
    fs.writeFileSync(small, colorJpeg(3, 48, 32));
    await rejectsUserError(load, [small, 'image is 48x32', '64x64']);
    fs.writeFileSync(small, saved.subarray(0, 300));
    await rejectsUserError(load, [small, 'cannot decode this JPEG']);
    fs.writeFileSync(small, Buffer.from('this is not a JPEG at all'));
    await rejectsUserError(load, [small, 'cannot decode this JPEG']);
    fs.writeFileSync(small, saved);
    const ok = await load();
    assert.equal(ok.train.n, 7);
  } finally {
    rmDir(root);
  }
});

test('fetch tiny-imagenet: a UserError with the official URL and the folder; the CLI exits 2', async () => {
  const root = tmpDir('tin-fetch');
  try {
    await rejectsUserError(fetchDataset('tiny-imagenet' as 'cifar10', root), ['http://cs231n.stanford.edu/tiny-imagenet-200.zip', path.join(path.resolve(root), 'tiny-imagenet')]);
    const r = await runCli(['data', 'fetch', 'tiny-imagenet', '--dir', root]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /http:\/\/cs231n\.stanford\.edu\/tiny-imagenet-200\.zip/);
    assert.ok(r.stderr.includes(path.join(root, 'tiny-imagenet', 'tiny-imagenet-200', 'wnids.txt')), r.stderr);
  } finally {
    rmDir(root);
  }
});

test('verify tiny-imagenet: counts, per-class counts and the official sizes as problems', async () => {
  const root = tmpDir('tin-ver');
  try {
    let r = await verifyDataset('tiny-imagenet', root);
    assert.equal(r.ok, false);
    assert.ok(r.problems[0].includes('no wnids.txt'));
    writeFake(root);
    r = await verifyDataset('tiny-imagenet', root);
    assert.equal(r.ok, false);
    assert.deepEqual(r.splits.map((s) => [s.name, s.n, s.shape.join('x'), s.perClass.join(' '), s.official]), [
      ['train', 7, '64x64x3', '2 3 2', 100000],
      ['val', 6, '64x64x3', '2 2 2', 10000],
    ]);
    assert.ok(r.problems.includes('wnids.txt lists 3 classes; the official release has 200'), r.problems.join('\n'));
    assert.ok(r.problems.includes('train split: 7 images; the official release has 100000'));
    assert.ok(r.problems.includes('train split: 3 class(es) without 500 images: n01443537 (2), n01629819 (3), n01641577 (2)'));
    assert.deepEqual(r.files.map((f) => f.file), ['wnids.txt', 'words.txt', 'val_annotations.txt']);
    assert.match(formatVerifyReport(r), /val: 6 images 64x64x3 \(val\/images: 6 JPEGs, official 10000\)/);
  } finally {
    rmDir(root);
  }
});

test('two training steps of VGG16 on 64x64 fake Tiny ImageNet through the library API', async () => {
  const root = tmpDir('tin-train');
  try {
    writeFake(root);
    await initBackend('wasm');
    const cfg = validateConfig({
      name: 'tin',
      seed: 1,
      backend: 'wasm',
      data: { dataset: 'tiny-imagenet', root, augment: { cropPadding: 4, horizontalFlip: true } },
      model: { arch: 'vgg16', width: 0.0625 },
      train: { method: 'ce', batchSize: 4, lr: 0.01 },
      ib: { enabled: true, layers: ['block5', 'fc1'], mask: { enabled: true, rule: 'code', lowY: 1, highX: 1 } },
    });
    const ds = await loadDataset(cfg.data, cfg.seed);
    const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(cfg.seed).fork('init'));
    const stepper = new TrainStepper(cfg, model, ds.numClasses);
    try {
      const probe = tf.tidy(() => {
        const out = model.forward(tf.zeros([2, 64, 64, 3]), { training: false });
        return { logits: out.logits.shape, block5: out.taps.block5.shape, fc1: out.taps.fc1.shape };
      });
      assert.deepEqual(probe, { logits: [2, 3], block5: [2, 2, 2, 32], fc1: [2, 256] });
      const before = Float32Array.from(await model.params[0].variable.data());
      let steps = 0;
      for (const batch of trainBatches(ds.train, { batchSize: 4, seed: cfg.seed, epoch: 0, shuffle: true, augment: { cropPadding: 0, horizontalFlip: false } })) {
        // The batch holds the decoded pixels of the images it names, scaled to [0, 1].
        for (let j = 0; j < batch.n; j++) {
          const src = imageOf(ds.train.images, batch.indices[j]);
          for (const p of [0, 777, 12287]) assert.equal(batch.x[j * 12288 + p], Math.fround(src[p] / 255));
          assert.equal(batch.y[j], ds.train.labels[batch.indices[j]]);
        }
        const out = await stepper.step(batch, 0, batch.step);
        assert.ok(Number.isFinite(out.loss), `loss ${out.loss}`);
        assert.ok(out.correct >= 0 && out.correct <= batch.n);
        assert.ok(Number.isFinite(out.logs.ib), 'IB term logged');
        steps++;
      }
      assert.equal(steps, 2); // 7 images, batch 4
      const after = Float32Array.from(await model.params[0].variable.data());
      assert.ok(after.some((v, i) => v !== before[i]), 'the first conv changed');
    } finally {
      stepper.dispose();
      model.dispose();
    }
  } finally {
    rmDir(root);
  }
});
