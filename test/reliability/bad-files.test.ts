// Corrupt dataset files and corrupt or mismatched checkpoints, run through `ibrar train`,
// `ibrar train --resume` and `ibrar eval` in child processes. The files are generated here
// (tiny: 20 MNIST-sized images, a 1-epoch run of a small CNN on 8x8 synthetic data) from a
// valid original with one fault each; see bad-input.ts for the rule every case follows.
// Loading a checkpoint only parses JSON and safetensors (no code is ever run from it) and
// checks every header entry against the data before reading it: the cases whose sizes lie
// are re-signed (sidecar SHA-256 updated) so they reach that check instead of the hash check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { createHash } from 'crypto';
import { encodeIdxImages, encodeIdxLabels } from '../../src/data/idx';
import { encodeCifarRecords, CIFAR100_FORMAT } from '../../src/data/cifar';
import { train } from '../../src/jobs/train';
import { decodeSafetensors } from '../../src/runs/safetensors';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig } from '../helpers/configs';
import { checkBadCase, type BadCase, damagedRunCase } from './bad-input';
import { pool } from './cli';

// ------------------------------------------------------------------ datasets

const N = 20;
const images = () => encodeIdxImages(new Uint8Array(N * 28 * 28).map((_, i) => (i * 7) % 256), N, 28, 28);
const labels = () => encodeIdxLabels(Array.from({ length: N }, (_, i) => i % 10));

function dataConfig(cwd: string, dataset: string): string {
  const file = path.join(cwd, 'cfg.yaml');
  fs.writeFileSync(
    file,
    [
      'name: bad',
      'backend: cpu',
      `data: {dataset: ${dataset}, root: ${JSON.stringify(path.join(cwd, 'data'))}, splitFromTest: 10}`,
      'model: {arch: small-cnn, width: 0.25}',
      'train: {epochs: 1, batchSize: 10}',
    ].join('\n'),
  );
  return file;
}

function put(cwd: string, rel: string, data: Uint8Array): string {
  const file = path.join(cwd, 'data', rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, data);
  return file;
}

const IMG = 'mnist/t10k-images-idx3-ubyte';
const LBL = 'mnist/t10k-labels-idx1-ubyte';

function mnistCase(name: string, faultyFile: string, write: (cwd: string) => void, expect: RegExp): BadCase {
  return {
    name,
    setup: (cwd) => {
      write(cwd);
      return ['train', '--config', dataConfig(cwd, 'mnist')];
    },
    file: (cwd) => path.join(cwd, 'data', faultyFile),
    expect,
  };
}

function withBytes(buf: Uint8Array, edit: (b: Uint8Array) => void): Uint8Array {
  const out = Uint8Array.from(buf);
  edit(out);
  return out;
}

const cifarRecords = (n: number, label = (i: number) => i % 10) =>
  encodeCifarRecords(new Uint8Array(n * 3072).map((_, i) => i % 251), Array.from({ length: n }, (_, i) => label(i)));

const dataCases: BadCase[] = [
  mnistCase('idx images: wrong magic', IMG, (c) => (put(c, IMG, withBytes(images(), (b) => (b[3] = 4))), put(c, LBL, labels())), /^byte 0: bad magic number: expected 0x00000803 \(idx3 unsigned-byte images\), found 0x00000804/),
  mnistCase('idx labels: wrong magic', LBL, (c) => (put(c, IMG, images()), put(c, LBL, withBytes(labels(), (b) => (b[2] = 9)))), /^byte 0: bad magic number: expected 0x00000801 .*found 0x00000901/),
  mnistCase('idx images: truncated', IMG, (c) => (put(c, IMG, images().subarray(0, 16 + 28 * 28 * 7 + 100)), put(c, LBL, labels())), /^expected 15696 bytes \(16-byte header \+ 20x28x28 data\), found 5604/),
  mnistCase('idx images: header cut short', IMG, (c) => (put(c, IMG, images().subarray(0, 10)), put(c, LBL, labels())), /^expected an idx file with a 16-byte header .*found only 10 bytes/),
  mnistCase('idx images: header claims 2^31 images', IMG, (c) => (put(c, IMG, withBytes(images(), (b) => new DataView(b.buffer).setUint32(4, 2 ** 31, false))), put(c, LBL, labels())), /^expected \d+ bytes \(16-byte header \+ 2147483648x28x28 data\), found 15696/),
  mnistCase('idx labels: label out of range', LBL, (c) => (put(c, IMG, images()), put(c, LBL, withBytes(labels(), (b) => (b[8 + 5] = 12)))), /^byte 13: label 5 is 12; expected 0\.\.9/),
  mnistCase('idx labels: count differs from images', LBL, (c) => (put(c, IMG, images()), put(c, LBL, encodeIdxLabels(Array.from({ length: N - 1 }, (_, i) => i % 10)))), /^label count 19 does not match the 20 images/),
  mnistCase('idx labels file missing', IMG, (c) => put(c, IMG, images()), /^found t10k-images-idx3-ubyte but not t10k-labels-idx1-ubyte\[\.gz\]/),
  mnistCase('gzip: corrupt stream', IMG + '.gz', (c) => (put(c, IMG + '.gz', withBytes(zlib.gzipSync(images()), (b) => b.fill(0xa5, 20, 60))), put(c, LBL, labels())), /^truncated or corrupt gzip data .*zlib says/),
  mnistCase('gzip: truncated stream', IMG + '.gz', (c) => {
    const gz = zlib.gzipSync(images());
    put(c, IMG + '.gz', gz.subarray(0, gz.length >> 1));
    put(c, LBL, labels());
  }, /^truncated or corrupt gzip data .*unexpected end of file/),
  {
    name: 'cifar10: truncated record file',
    setup: (cwd) => (put(cwd, 'cifar10/test_batch.bin', cifarRecords(20).subarray(0, 3073 * 20 - 5)), ['train', '--config', dataConfig(cwd, 'cifar10')]),
    file: (cwd) => path.join(cwd, 'data', 'cifar10', 'test_batch.bin'),
    expect: /^expected a whole number of 3073-byte records .* \(3068 bytes left over after 19 records\)/,
  },
  {
    name: 'cifar10: label out of range',
    setup: (cwd) => (put(cwd, 'cifar10/test_batch.bin', cifarRecords(20, (i) => (i === 3 ? 10 : i % 10))), ['train', '--config', dataConfig(cwd, 'cifar10')]),
    file: (cwd) => path.join(cwd, 'data', 'cifar10', 'test_batch.bin'),
    expect: /^byte 9219: label of record 3 is 10; expected 0\.\.9/,
  },
  {
    name: 'cifar10: empty file',
    setup: (cwd) => (put(cwd, 'cifar10/test_batch.bin', new Uint8Array(0)), ['train', '--config', dataConfig(cwd, 'cifar10')]),
    file: (cwd) => path.join(cwd, 'data', 'cifar10', 'test_batch.bin'),
    expect: /^expected a whole number of 3073-byte records .*found 0 bytes/,
  },
  {
    name: 'cifar100: coarse label out of range',
    setup: (cwd) => {
      const recs = encodeCifarRecords(new Uint8Array(20 * 3072), Array.from({ length: 20 }, (_, i) => i), CIFAR100_FORMAT, Array.from({ length: 20 }, (_, i) => (i === 2 ? 25 : 0)));
      put(cwd, 'cifar100/test.bin', recs);
      return ['train', '--config', dataConfig(cwd, 'cifar100')];
    },
    file: (cwd) => path.join(cwd, 'data', 'cifar100', 'test.bin'),
    expect: /^byte 6148: coarse label of record 2 is 25; expected 0\.\.19/,
  },
];

// ------------------------------------------------------------------ checkpoints

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Sidecar {
  arch: string;
  epoch: number;
  files: { weights: { file: string; bytes: number; sha256: string }; optimizer: { file: string; bytes: number; sha256: string } | null };
  [k: string]: unknown;
}

const ckDir = (run: string) => runLayout(run).checkpoints;
const sidecarFile = (run: string) => path.join(ckDir(run), 'last.json');
const readSidecar = (run: string): Sidecar => JSON.parse(fs.readFileSync(sidecarFile(run), 'utf8'));
const writeSidecar = (run: string, s: unknown) => fs.writeFileSync(sidecarFile(run), JSON.stringify(s, null, 2));
const weightsFile = (run: string) => path.join(ckDir(run), readSidecar(run).files.weights.file);
const optimFile = (run: string) => path.join(ckDir(run), readSidecar(run).files.optimizer!.file);

/** Update the sidecar's size and SHA-256 for a modified file, so the hash check passes. */
function resign(run: string, which: 'weights' | 'optimizer' = 'weights'): void {
  const s = readSidecar(run);
  const ref = s.files[which]!;
  const buf = fs.readFileSync(path.join(ckDir(run), ref.file));
  ref.bytes = buf.length;
  ref.sha256 = sha256(buf);
  writeSidecar(run, s);
}

/** Rewrite a safetensors header (the data section is kept as is). */
function rewriteHeader(file: string, edit: (h: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>) => void, extraData?: Uint8Array): void {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  edit(header);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), buf.subarray(8 + n), ...(extraData ? [extraData] : [])]));
}

let goodRun = '';
let wideRun = '';

function ckptCase(name: string, corrupt: (run: string) => void, file: (run: string) => string, expect: RegExp, command: 'resume' | 'eval' = 'resume'): BadCase {
  return damagedRunCase(name, () => goodRun, corrupt, file, expect, command);
}

const ckptCases: BadCase[] = [
  ckptCase('checkpoint from another architecture (width 0.5 into width 0.25)', (run) => {
    fs.rmSync(ckDir(run), { recursive: true });
    fs.cpSync(ckDir(wideRun), ckDir(run), { recursive: true });
    for (const f of fs.readdirSync(ckDir(run))) if (f.startsWith('best.')) fs.rmSync(path.join(ckDir(run), f));
  }, weightsFile, /^tensor 'conv1\.weight': shape \[16, 3, 3, 3\], the model needs \[8, 3, 3, 3\] \(PyTorch layout\): checkpoint from a different architecture/),
  ckptCase('same, through eval', (run) => {
    fs.rmSync(ckDir(run), { recursive: true });
    fs.cpSync(ckDir(wideRun), ckDir(run), { recursive: true });
  }, weightsFile, /^tensor 'conv1\.weight': shape \[16, 3, 3, 3\], the model needs \[8, 3, 3, 3\]/, 'eval'),
  ckptCase('sidecar names another architecture', (run) => writeSidecar(run, { ...readSidecar(run), arch: 'vgg16' }), sidecarFile, /^arch: checkpoint is for architecture 'vgg16', the model is 'small-cnn'/),
  ckptCase('header lies about a tensor size', (run) => {
    rewriteHeader(weightsFile(run), (h) => (h['bn1.weight'].shape = [9]));
    resign(run);
  }, weightsFile, /^tensor 'bn1\.weight'\.data_offsets: data_offsets \[\d+, \d+\] span 32 bytes but F32 shape \[9\] needs 36/),
  ckptCase('header lies about a dtype (same byte length)', (run) => {
    rewriteHeader(weightsFile(run), (h) => Object.assign(h['bn1.weight'], { dtype: 'F64', shape: [4] }));
    resign(run);
  }, weightsFile, /^tensor 'bn1\.weight': dtype F64, the model needs F32/),
  ckptCase('header length field of 2^40 bytes', (run) => {
    const f = weightsFile(run);
    const b = fs.readFileSync(f);
    b.writeBigUInt64LE(2n ** 40n, 0);
    fs.writeFileSync(f, b);
    resign(run);
  }, weightsFile, /^byte 0: header length 1099511627776 exceeds the 100000000-byte limit/),
  ckptCase('header length past the end of the file', (run) => {
    const f = weightsFile(run);
    const b = fs.readFileSync(f);
    b.writeBigUInt64LE(BigInt(b.length), 0);
    fs.writeFileSync(f, b);
    resign(run);
  }, weightsFile, /^byte 0: header length \d+ runs past the end of the file/),
  ckptCase('data section cut short (re-signed)', (run) => {
    const f = weightsFile(run);
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, -4));
    resign(run);
  }, weightsFile, /^tensor '[^']+'\.data_offsets: data_offsets \[\d+, \d+\] run past the end of the data section/),
  ckptCase('an extra tensor named __proto__ (re-signed)', (run) => {
    const f = weightsFile(run);
    const buf = fs.readFileSync(f);
    const end = buf.length - 8 - Number(buf.readBigUInt64LE(0));
    const entry = { dtype: 'F32', shape: [1], data_offsets: [end, end + 4] };
    // defineProperty: plain assignment to __proto__ would set the prototype, not a key.
    rewriteHeader(f, (h) => Object.defineProperty(h, '__proto__', { value: entry, enumerable: true, writable: true, configurable: true }), new Uint8Array(4));
    resign(run);
  }, weightsFile, /^tensor '__proto__': weights: tensor in the file is not listed in the sidecar/),
  ckptCase('weights truncated (sidecar not updated)', (run) => {
    const f = weightsFile(run);
    fs.writeFileSync(f, fs.readFileSync(f).subarray(0, 1000));
  }, weightsFile, /^file is 1000 bytes, the sidecar records \d+: truncated or replaced/),
  ckptCase('one bit flipped in the weights', (run) => {
    const f = weightsFile(run);
    const b = fs.readFileSync(f);
    b[b.length - 3] ^= 0x10;
    fs.writeFileSync(f, b);
  }, weightsFile, /^SHA-256 [0-9a-f]{64} does not match the sidecar's [0-9a-f]{64}: the file is corrupt or was modified/),
  ckptCase('one bit flipped in the optimizer slots', (run) => {
    const f = optimFile(run);
    const b = fs.readFileSync(f);
    b[b.length - 3] ^= 0x01;
    fs.writeFileSync(f, b);
  }, optimFile, /^SHA-256 .* does not match the sidecar's/),
  ckptCase('sidecar is not JSON', (run) => fs.writeFileSync(sidecarFile(run), fs.readFileSync(sidecarFile(run), 'utf8').slice(0, 100)), sidecarFile, /^sidecar is not valid JSON/),
  ckptCase('sidecar points outside the checkpoint folder', (run) => {
    const s = readSidecar(run);
    s.files.weights.file = '../../../../etc/passwd';
    writeSidecar(run, s);
  }, sidecarFile, /^files\.weights\.file: invalid checkpoint sidecar: a plain file name/),
  ckptCase('sidecar with an unknown key', (run) => writeSidecar(run, { ...readSidecar(run), exec: 'rm -rf /' }), sidecarFile, /^invalid checkpoint sidecar: Unrecognized key\(s\) in object: 'exec'/),
  ckptCase('sidecar with a negative epoch', (run) => writeSidecar(run, { ...readSidecar(run), epoch: -1 }), sidecarFile, /^epoch: invalid checkpoint sidecar: .*greater than or equal to 0/),
  ckptCase('sidecar missing (eval)', (run) => fs.rmSync(sidecarFile(run)), sidecarFile, /^no checkpoint 'last': the sidecar is missing although last\.safetensors exists/, 'eval'),
  ckptCase('metrics.jsonl with a corrupt line', (run) => {
    const f = runLayout(run).metricsJsonl;
    fs.writeFileSync(f, '{"epoch": 1, oops\n' + fs.readFileSync(f, 'utf8'));
  }, (run) => runLayout(run).metricsJsonl, /^line 1: line is not a JSON object/),
  ckptCase("the run's config.yaml edited to a bad value", (run) => {
    const f = runLayout(run).config;
    fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace(/epochs: \d+/, 'epochs: -1'));
  }, (run) => runLayout(run).config, /^train\.epochs: .*greater than 0/),
];

const evalArgCases: BadCase[] = (
  [
    ['--eps', '2', /^expected a number in \[0, 1\] or a fraction like 8\/255, found '2'/],
    ['--attacks', 'pgd,onepixel', /^unknown attack 'onepixel'; valid attacks: /],
    ['--n', '-5', /^expected a whole number ≥ 1, found -5/],
    ['--batch-size', '0', /^expected a whole number ≥ 1, found 0/],
    ['--steps', '2.5', /^expected a whole number ≥ 1, found 2\.5/],
    // The RNG takes 32-bit seeds: 2^32 would repeat seed 0's evaluation.
    ['--seed', '4294967296', /^expected a whole number in 0\.\.4294967295, found 4294967296$/],
    // --param gets the bounds the same parameter has through --eps and the config.
    ['--param', 'pgd.eps=5', /^ε is an L∞ budget on pixels in \[0, 1\]; write 8\/255, not 8$/, '--param pgd.eps'],
    ['--param', 'apgd-ce.eps=8', /^ε is an L∞ budget on pixels in \[0, 1\]/, '--param apgd-ce.eps'],
    ['--param', 'pgd.alpha=0', /^must be > 0/, '--param pgd.alpha'],
  ] as Array<[string, string, RegExp, string?]>
).map(([flag, value, expect, named]) => ({
  name: `eval ${flag} ${value}`,
  setup: (cwd: string) => {
    fs.cpSync(goodRun, path.join(cwd, 'run'), { recursive: true });
    return ['eval', '--run', path.join(cwd, 'run'), flag, value];
  },
  file: () => named ?? flag,
  expect,
  untouched: (cwd: string) => path.join(cwd, 'run'),
}));

test('setup: two tiny trained runs (small-cnn at width 0.25 and 0.5)', { timeout: 180_000 }, async () => {
  goodRun = (await train({ cfg: tinyConfig({ backend: 'cpu', train: { epochs: 1 } }) })).runDir;
  wideRun = (await train({ cfg: tinyConfig({ backend: 'cpu', model: { width: 0.5 }, train: { epochs: 1 } }) })).runDir;
});

test(`${dataCases.length} corrupt dataset files: exit 2 naming file and offset, nothing written`, { timeout: 120_000 }, async () => {
  const failures: string[] = [];
  await pool(dataCases, 3, async (c) => void (await checkBadCase(c).catch((e: Error) => failures.push(e.message))));
  assert.deepEqual(failures, []);
});

test(`${ckptCases.length + evalArgCases.length} corrupt checkpoints and bad eval arguments: exit 2, the run dir unchanged`, { timeout: 120_000 }, async () => {
  const failures: string[] = [];
  await pool([...ckptCases, ...evalArgCases], 3, async (c) => void (await checkBadCase(c).catch((e: Error) => failures.push(e.message))));
  assert.deepEqual(failures, []);
});

test('a header key named __proto__ stays data: decoding pollutes no prototype', () => {
  const json = '{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  const pad = ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length + pad.length));
  const buf = Buffer.concat([len, Buffer.from(json + pad), Buffer.from(new Float32Array([2.5]).buffer)]);
  const out = decodeSafetensors(buf, 'proto.safetensors');
  assert.equal(out.tensors.get('__proto__')?.data[0], 2.5);
  assert.equal(Object.getPrototypeOf(out.metadata), Object.prototype);
  assert.equal(out.metadata['__proto__' as string], 'x');
  assert.equal(({} as Record<string, unknown>).dtype, undefined, 'Object.prototype untouched');
});
