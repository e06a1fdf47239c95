// No input may hang ibrar or make it allocate without limit. Any path it reads or writes may be
// a FIFO, a character device (/dev/zero), a symlink to one, a pseudo-file in /proc, a socket
// or a sparse file of many gigabytes. Each is refused at once with a UserError naming the path
// (the bounded reader, src/engine/safe-read.ts, that every reader goes through), in-process
// here and through the CLI (exit 2, one message, nothing written) below. Before the bounded
// reader, the FIFO cases hung until SIGKILL (a blocked read ignores SIGTERM) and /dev/zero
// grew the process without end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as zlib from 'zlib';
import { UserError } from '../../src/errors';
import {
  appendRegular,
  checkWritableFile,
  MAX_BUFFER_BYTES,
  openAppend,
  readFileBounded,
  readFileBoundedAsync,
  readFileBoundedOrNull,
} from '../../src/engine/safe-read';
import { encodeIdxImages, encodeIdxLabels } from '../../src/data/idx';
import { encodeCifarRecords } from '../../src/data/cifar';
import { readEvalState } from '../../src/runs/eval-state';
import { readTinyLayout, listTinyTrain, loadTinySplit } from '../../src/data/tiny-imagenet';
import { train } from '../../src/jobs/train';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig, tempDir } from '../helpers/configs';
import { checkBadCase, damagedRunCase, type BadCase } from './bad-input';
import { pool } from './cli';

const root = tempDir('ibrar-special-');
after(() => fs.rmSync(root, { recursive: true, force: true }));

function fifo(p: string): string {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  execFileSync('mkfifo', [p]);
  return p;
}

function link(target: string, p: string): string {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.symlinkSync(target, p);
  return p;
}

/** A file of `bytes` that takes no disk space (a hole). */
function sparse(p: string, bytes: number): string {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.closeSync(fs.openSync(p, 'w'));
  fs.truncateSync(p, bytes);
  return p;
}

function throwsUser(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `a UserError, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

const opts = { maxBytes: 1 << 20, what: 'test file' };

test('bounded reader: pipes, devices, sockets, folders and /proc are refused without blocking', async () => {
  const p = fifo(path.join(root, 'unit', 'pipe'));
  throwsUser(() => readFileBounded(p, opts), /pipe$|test file is a named pipe \(FIFO\), not a regular file/);
  await assert.rejects(readFileBoundedAsync(p, opts), /test file is a named pipe \(FIFO\), not a regular file/);
  throwsUser(() => readFileBounded('/dev/zero', opts), /^\/dev\/zero: test file is a character device, not a regular file/);
  throwsUser(() => readFileBounded(link('/dev/zero', path.join(root, 'unit', 'zero-link')), opts), /zero-link: test file is a character device/);
  throwsUser(() => readFileBounded(root, opts), /test file is a directory, not a regular file/);
  // /proc files say they are 0 bytes whatever they hold: reading past the stat size is refused.
  throwsUser(() => readFileBounded('/proc/self/status', opts), /^\/proc\/self\/status: test file holds more bytes than its size on disk \(0\) says/);
  const sock = path.join(root, 'unit', 'sock');
  const server = net.createServer().listen(sock);
  await new Promise((r) => server.once('listening', r));
  try {
    throwsUser(() => readFileBounded(sock, opts), /test file is a socket, not a regular file/);
  } finally {
    server.close();
  }
  assert.equal(readFileBoundedOrNull(path.join(root, 'unit', 'absent'), opts), null);
  throwsUser(() => readFileBounded(path.join(root, 'unit', 'absent'), opts), /test file not found/);
});

test('bounded reader: the size the format allows is checked before reading; regular files read exactly', () => {
  const big = sparse(path.join(root, 'unit', 'big'), 5 * 2 ** 30);
  throwsUser(() => readFileBounded(big, opts), /test file is 5368709120 bytes \(5\.0 GiB\); a valid one is at most 1048576 bytes/);
  const ok = path.join(root, 'unit', 'ok');
  fs.writeFileSync(ok, 'hello');
  assert.equal(readFileBounded(ok, opts).toString(), 'hello');
  assert.equal(readFileBounded(link(ok, path.join(root, 'unit', 'ok-link')), opts).toString(), 'hello');
  fs.writeFileSync(path.join(root, 'unit', 'empty'), '');
  assert.equal(readFileBounded(path.join(root, 'unit', 'empty'), opts).length, 0);
});

test('writers: appending to a pipe or a device is refused, never blocks', () => {
  const p = fifo(path.join(root, 'unit', 'append-pipe'));
  throwsUser(() => openAppend(p, 'metrics file'), /metrics file is a named pipe \(FIFO\), not a regular file; ibrar writes only regular files/);
  throwsUser(() => appendRegular('/dev/null', 'x', 'run log'), /^\/dev\/null: run log is a character device/);
  throwsUser(() => checkWritableFile(link(path.join(root, 'nowhere', 'x'), path.join(root, 'unit', 'dangling')), 'run log'), /symbolic link to a missing file/);
  const f = path.join(root, 'unit', 'appended');
  appendRegular(f, 'a\n', 'record file');
  appendRegular(f, 'b\n', 'record file');
  assert.equal(fs.readFileSync(f, 'utf8'), 'a\nb\n');
});

test('evaluation state that is a pipe is discarded at once (the next write replaces it)', () => {
  const p = fifo(path.join(root, 'unit', '.state-x.json'));
  const res = readEvalState(p, { key: 'x', n: 1, batchSize: 1, attacks: ['fgsm'], numClasses: 10 });
  assert.deepEqual(res, { problem: 'evaluation state is a named pipe (FIFO), not a regular file; ibrar reads only regular files (a pipe or a device can block or never end)' });
});

test('Tiny ImageNet: a JPEG that is a pipe is refused, the cache header/data as pipes are rebuilt', async () => {
  const base = path.join(root, 'tiny-data');
  const dir = path.join(base, 'tiny-imagenet');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'wnids.txt'), 'n01\nn02\n');
  fifo(path.join(dir, 'train', 'n01', 'images', 'a.JPEG'));
  fifo(path.join(dir, 'train', 'n02', 'images', 'b.JPEG'));
  fifo(path.join(dir, 'ibrar-cache-v1-train.json'));
  const layout = await readTinyLayout(dir, base);
  const list = await listTinyTrain(layout);
  await assert.rejects(loadTinySplit(layout, list), /a\.JPEG: JPEG image is a named pipe \(FIFO\), not a regular file/);
});

// ------------------------------------------------------------------ through the CLI

let goodRun = '';

test('setup: a tiny trained run', { timeout: 180_000 }, async () => {
  goodRun = (await train({ cfg: tinyConfig({ backend: 'cpu', train: { epochs: 1 } }) })).runDir;
});

function configFile(cwd: string, data: string): string {
  const file = path.join(cwd, 'cfg.yaml');
  fs.writeFileSync(
    file,
    ['name: special', 'backend: cpu', `data: {dataset: ${data}, root: ${JSON.stringify(path.join(cwd, 'data'))}, splitFromTest: 10}`, 'model: {arch: small-cnn, width: 0.25}', 'train: {epochs: 1, batchSize: 10}'].join('\n'),
  );
  return file;
}

const N = 20;
const idxImages = () => encodeIdxImages(new Uint8Array(N * 28 * 28), N, 28, 28);
const idxLabels = () => encodeIdxLabels(Array.from({ length: N }, (_, i) => i % 10));
const IMG = path.join('mnist', 't10k-images-idx3-ubyte');
const LBL = path.join('mnist', 't10k-labels-idx1-ubyte');

function put(cwd: string, rel: string, data: Uint8Array): string {
  const file = path.join(cwd, 'data', rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return file;
}

function dataCase(name: string, dataset: string, rel: string, make: (cwd: string, file: string) => void, expect: RegExp): BadCase {
  return {
    name,
    setup: (cwd) => {
      make(cwd, path.join(cwd, 'data', rel));
      return ['train', '--config', configFile(cwd, dataset)];
    },
    file: (cwd) => path.join(cwd, 'data', rel),
    expect,
  };
}

function runCase(name: string, rel: string, make: (run: string, file: string) => void, expect: RegExp, command: 'resume' | 'eval' = 'resume'): BadCase {
  const damage = (run: string) => {
    const file = path.join(run, rel);
    fs.rmSync(file, { recursive: true, force: true });
    make(run, file);
  };
  return damagedRunCase(name, () => goodRun, damage, (run) => path.join(run, rel), expect, command);
}

const cliCases: BadCase[] = [
  {
    name: 'config is a FIFO',
    setup: (cwd) => ['train', '--config', fifo(path.join(cwd, 'cfg.yaml'))],
    file: (cwd) => path.join(cwd, 'cfg.yaml'),
    expect: /^config is a named pipe \(FIFO\), not a regular file/,
  },
  {
    name: 'config is a symlink to /dev/zero',
    setup: (cwd) => ['train', '--config', link('/dev/zero', path.join(cwd, 'cfg.yaml'))],
    file: (cwd) => path.join(cwd, 'cfg.yaml'),
    expect: /^config is a character device, not a regular file/,
  },
  {
    name: 'config in /proc',
    setup: () => ['train', '--config', '/proc/self/status'],
    file: () => '/proc/self/status',
    expect: /^config holds more bytes than its size on disk \(0\) says/,
  },
  {
    name: 'config of 2 GiB (sparse)',
    setup: (cwd) => ['train', '--config', sparse(path.join(cwd, 'cfg.yaml'), 2 ** 31)],
    file: (cwd) => path.join(cwd, 'cfg.yaml'),
    expect: /^config is 2147483648 bytes \(2\.0 GiB\); a valid one is at most 1048576 bytes/,
  },
  {
    // Refused from one linear scan before the parser sees it (yaml's recursive composer
    // overflows its stack on such input; in one run here it aborted the process outright).
    name: 'config nesting 20,000 flow brackets deep',
    setup: (cwd) => {
      const file = path.join(cwd, 'cfg.yaml');
      fs.writeFileSync(file, `name: deep\nprobe: {margin: ${'['.repeat(20_000)}1${']'.repeat(20_000)}}\n`);
      return ['train', '--config', file];
    },
    file: (cwd) => path.join(cwd, 'cfg.yaml'),
    expect: /^invalid YAML: the document nests too deeply \(more than 32 levels\)$/,
  },
  dataCase('idx images are a FIFO', 'mnist', IMG, (cwd, f) => (fifo(f), put(cwd, LBL, idxLabels())), /^dataset file is a named pipe \(FIFO\), not a regular file/),
  dataCase('idx.gz is a symlink to /dev/zero', 'mnist', IMG + '.gz', (cwd, f) => (link('/dev/zero', f), put(cwd, LBL, idxLabels())), /^dataset file is a character device/),
  dataCase(
    'idx.gz decompression bomb: far more data than its header promises',
    'mnist',
    IMG + '.gz',
    (cwd, f) => {
      // A valid header for 20 images, then 64 MiB of zeros: stopped at 15,696 bytes.
      put(cwd, IMG + '.gz', zlib.gzipSync(Buffer.concat([idxImages(), Buffer.alloc(64 << 20)])));
      put(cwd, LBL, idxLabels());
      void f;
    },
    /^gzip data decompresses to more than the 15696 bytes its header promises; stopped there/,
  ),
  dataCase(
    'idx.gz whose header promises 2^31 images',
    'mnist',
    IMG + '.gz',
    (cwd) => {
      const img = idxImages();
      new DataView(img.buffer).setUint32(4, 2 ** 31, false);
      put(cwd, IMG + '.gz', zlib.gzipSync(img));
      put(cwd, LBL, idxLabels());
    },
    /^byte 4: storing the header's 2147483648x28x28 data needs 1683627180048 bytes \(1568\.0 GiB\) in memory; ibrar holds it in one buffer/,
  ),
  dataCase('a plain idx file of 3 GiB (sparse) whose header says 20 images: refused from its size, unread', 'mnist', IMG, (cwd, f) => {
    sparse(f, 3 * 2 ** 30);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, idxImages().subarray(0, 16), 0, 16, 0);
    fs.closeSync(fd);
    put(cwd, LBL, idxLabels());
  }, /^expected 15696 bytes \(16-byte header \+ 20x28x28 data\), found 3221225472/),
  dataCase('CIFAR-10 test file of 5 GiB (sparse)', 'cifar10', path.join('cifar10', 'test_batch.bin'), (_cwd, f) => sparse(f, 3073 * 1_747_200), /^storing the 1747200 images of test_batch\.bin needs 5367398400 bytes \(5\.0 GiB\) in memory/),
  {
    name: 'CIFAR-10 training files that together need more than one buffer (sparse, never read)',
    setup: (cwd) => {
      for (let i = 1; i <= 5; i++) sparse(path.join(cwd, 'data', 'cifar10', `data_batch_${i}.bin`), 3073 * 300_000);
      put(cwd, path.join('cifar10', 'test_batch.bin'), encodeCifarRecords(new Uint8Array(20 * 3072), Array.from({ length: 20 }, (_, i) => i % 10)));
      const file = path.join(cwd, 'cfg.yaml');
      fs.writeFileSync(file, ['name: special', 'backend: cpu', `data: {dataset: cifar10, root: ${JSON.stringify(path.join(cwd, 'data'))}}`, 'model: {arch: small-cnn, width: 0.25}'].join('\n'));
      return ['train', '--config', file];
    },
    file: (cwd) => path.join(cwd, 'data', 'cifar10', 'data_batch_5.bin'),
    expect: /^storing the 1500000 images of data_batch_1\.bin, .*data_batch_5\.bin needs 4608000000 bytes \(4\.3 GiB\) in memory/,
  },
  {
    name: 'runs folder under /proc',
    setup: (cwd) => {
      const file = path.join(cwd, 'cfg.yaml');
      fs.writeFileSync(file, ['name: special', 'backend: cpu', 'runsDir: /proc/self/fd/runs', 'data: {dataset: synthetic, synthetic: {height: 8, width: 8, trainSize: 32, testSize: 16}}', 'model: {arch: small-cnn, width: 0.25}'].join('\n'));
      return ['train', '--config', file];
    },
    file: () => '/proc/self/fd/runs/special',
    // Node's recursive mkdir loops forever here (ENOENT under /proc although the parent exists).
    expect: /^cannot create the runs folder \(ENOENT: no such file or directory, mkdir '\/proc\/self\/fd\/runs'\)$/,
  },
  runCase('checkpoint sidecar is a FIFO (resume)', path.join('checkpoints', 'last.json'), (_r, f) => fifo(f), /^checkpoint sidecar is a named pipe \(FIFO\), not a regular file/),
  runCase('checkpoint sidecar is a symlink to /dev/zero (eval)', path.join('checkpoints', 'last.json'), (_r, f) => link('/dev/zero', f), /^checkpoint sidecar is a character device/, 'eval'),
  runCase('checkpoint sidecar is 1 GiB (sparse)', path.join('checkpoints', 'last.json'), (_r, f) => sparse(f, 2 ** 30), /^checkpoint sidecar is 1073741824 bytes \(1\.0 GiB\); a valid one is at most 16777216 bytes/),
  runCase('metrics.jsonl is a FIFO (resume)', 'metrics.jsonl', (_r, f) => fifo(f), /^metrics file is a named pipe \(FIFO\), not a regular file/),
  runCase('metrics.csv is a symlink to /dev/zero', 'metrics.csv', (_r, f) => link('/dev/zero', f), /^metrics file is a character device/),
  runCase('log.jsonl is a symlink to /dev/null (resume)', 'log.jsonl', (_r, f) => link('/dev/null', f), /^run log is a character device/),
  runCase('the run lock is a FIFO', '.lock', (_r, f) => fifo(f), /^run lock is a named pipe \(FIFO\)/),
  runCase('config.yaml of the run is a FIFO', 'config.yaml', (_r, f) => fifo(f), /^run config is a named pipe \(FIFO\)/, 'eval'),
  runCase('checkpoints/ is a FIFO', 'checkpoints', (_r, f) => fifo(f), /^checkpoints folder is a named pipe \(FIFO\), not a directory/),
  runCase('eval/ is a symlink to /dev/null', 'eval', (_r, f) => link('/dev/null', f), /^evaluation folder is a character device, not a directory/, 'eval'),
  {
    name: 'import: the weights file is a symlink to /dev/zero',
    setup: (cwd) => ['import', '--weights', link('/dev/zero', path.join(cwd, 'model.safetensors')), '--config', configFile(cwd, 'synthetic')],
    file: (cwd) => path.join(cwd, 'model.safetensors'),
    expect: /^weights file is a character device, not a regular file/,
  },
  {
    name: 'import: the weights file is a FIFO',
    setup: (cwd) => ['import', '--weights', fifo(path.join(cwd, 'model.safetensors')), '--config', configFile(cwd, 'synthetic')],
    file: (cwd) => path.join(cwd, 'model.safetensors'),
    expect: /^weights file is a named pipe \(FIFO\), not a regular file/,
  },
];

test(`${cliCases.length} pipes, devices, /proc files and huge sparse files through the CLI: exit 2 at once, nothing written`, { timeout: 240_000 }, async () => {
  // The weights file named by the sidecar as a device (after setup: it depends on the run).
  const weights = JSON.parse(fs.readFileSync(path.join(runLayout(goodRun).checkpoints, 'last.json'), 'utf8')).files.weights.file as string;
  cliCases.push(runCase('weights file is a symlink to /dev/zero', path.join('checkpoints', weights), (_r, f) => link('/dev/zero', f), /^checkpoint file is a character device, not a regular file/));
  const failures: string[] = [];
  await pool(cliCases, 3, async (c) => void (await checkBadCase(c).catch((e: Error) => failures.push(e.message))));
  assert.deepEqual(failures, []);
});

test('the largest buffer is what the memory checks assume', () => {
  assert.equal(MAX_BUFFER_BYTES, require('buffer').constants.MAX_LENGTH);
});

test('data verify: problems found exit 2 (after the report), a clean copy exits 0', { timeout: 60_000 }, async () => {
  const { runCli } = await import('./cli');
  const bad = path.join(root, 'verify-bad');
  fs.mkdirSync(path.join(bad, 'cifar10'), { recursive: true });
  fs.writeFileSync(path.join(bad, 'cifar10', 'test_batch.bin'), Buffer.alloc(100));
  const res = await runCli(['data', 'verify', '--dataset', 'cifar10', '--root', bad]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stdout, /PROBLEMS FOUND/);
  assert.match(res.stderr, new RegExp(`^ibrar: ${path.join(bad, 'cifar10').replace(/[.]/g, '\\.')}: cifar10: 2 problems and 1 checksum mismatch found \\(see the report above\\)\\n$`));
  // The shared official copy (when present) is clean: exit 0. A pipe among its files: exit 2 at once.
  const shared = process.env.IBRAR_DATA;
  if (!shared || !fs.existsSync(path.join(shared, 'mnist', 't10k-images-idx3-ubyte.gz'))) return;
  const ok = await runCli(['data', 'verify', '--dataset', 'mnist', '--root', shared]);
  assert.equal(ok.code, 0, ok.stderr);
  const good = path.join(root, 'verify-good');
  fs.cpSync(path.join(shared, 'mnist'), path.join(good, 'mnist'), { recursive: true });
  fifo(path.join(good, 'mnist', 'train-images-idx3-ubyte'));
  fs.writeFileSync(path.join(good, 'mnist', 'train-labels-idx1-ubyte'), idxLabels());
  const pipe = await runCli(['data', 'verify', '--dataset', 'mnist', '--root', good]);
  assert.equal(pipe.code, 2, pipe.stderr);
  assert.match(pipe.stderr, /train-images-idx3-ubyte: dataset file is a named pipe \(FIFO\)/);
});
