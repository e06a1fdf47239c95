// Property-based fuzzing (fast-check) of every reader of input ibrar does not control: the
// config loader, the safetensors decoder and checkpoint sidecar reader, the idx / gzip /
// CIFAR / MAT dataset readers and the evaluation state file. Property: every generated input
// ends in a result or a UserError (exit 2, one clear line; details only on indented lines),
// never another exception, a hang (each test has a timeout) or unbounded memory (checked
// after every input). Inputs are both raw bytes and valid files with one structured fault
// (a mutated field, a flipped byte, a cut), so the fuzzing reaches past the first check.
//
// Seeded and bounded (fc's `seed` and `numRuns`; small sizes), so the runs are the same every
// time and the whole suite stays within a few seconds here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';
import { createHash } from 'crypto';
import fc from 'fast-check';
import * as YAML from 'yaml';
import { UserError } from '../../src/errors';
import { loadConfig, validateConfig } from '../../src/config/load';
import { decodeSafetensors, encodeSafetensors } from '../../src/runs/safetensors';
import { readCheckpointFiles, readCheckpointSidecar, saveCheckpoint } from '../../src/runs/checkpoint';
import { readEvalState, writeEvalState, type EvalState } from '../../src/runs/eval-state';
import { canonicalJson } from '../../src/runs/config-hash';
import { encodeIdxImages, encodeIdxLabels, parseIdxImages, parseIdxLabels } from '../../src/data/idx';
import { readIdxPair } from '../../src/data/mnist';
import { gunzipBounded } from '../../src/data/files';
import { CIFAR10_FORMAT, CIFAR100_FORMAT, encodeCifarRecords, readCifarFiles } from '../../src/data/cifar';
import { parseMat } from '../../src/data/mat';
import { decodeTinyJpeg } from '../../src/data/tiny-imagenet';
import { REPO_ROOT } from '../helpers/golden';
import { tf } from '../../src/engine/tf';
import { tempDir } from '../helpers/configs';
import { matFile, svhnVars } from '../data/mat-writer';

/** Seeds: one per target, fixed, so every run of the suite sees the same inputs. */
const SEED = { config: 20261, configSet: 20260, jpeg: 20270, configDoc: 20262, safetensors: 20263, sidecar: 20264, idx: 20265, gzip: 20266, cifar: 20267, mat: 20268, evalState: 20269 } as const;

const dir = tempDir('ibrar-fuzz-');
const baseRss = process.memoryUsage.rss();

/** The property every reader must have: a result or a UserError with one clear line. */
function userErrorOrResult(err: unknown): true {
  if (!(err instanceof UserError)) throw new Error(`not a UserError: ${(err as Error)?.stack ?? String(err)}`);
  const [first, ...rest] = err.message.split('\n');
  assert.ok(first.trim().length > 0, 'a message');
  assert.ok(!/undefined|\[object Object\]|NaN bytes/.test(first), `a clear message: ${first}`);
  for (const line of rest) assert.ok(line.startsWith('  '), `details only on indented lines: ${JSON.stringify(err.message)}`);
  // No input may grow the process without bound: 1 GiB over the start is far beyond any input here.
  assert.ok(process.memoryUsage.rss() - baseRss < 2 ** 30, 'memory stays bounded');
  return true;
}

function syncOk(fn: () => unknown): boolean {
  try {
    fn();
  } catch (err) {
    userErrorOrResult(err);
  }
  return true;
}

async function asyncOk(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
  } catch (err) {
    userErrorOrResult(err);
  }
  return true;
}

/** Bytes with one structured fault: a byte set, a cut, bytes inserted, or a run of bytes overwritten. */
function mutate(base: Uint8Array): fc.Arbitrary<Uint8Array> {
  const at = fc.nat({ max: Math.max(0, base.length - 1) });
  return fc.oneof(
    fc.tuple(at, fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
      const b = Uint8Array.from(base);
      if (b.length) b[i] = v;
      return b;
    }),
    at.map((i) => base.slice(0, i)),
    fc.tuple(at, fc.uint8Array({ maxLength: 16 })).map(([i, ins]) => Uint8Array.from([...base.subarray(0, i), ...ins, ...base.subarray(i)])),
    fc.tuple(at, fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([i, run]) => {
      const b = Uint8Array.from(base);
      b.set(run.subarray(0, Math.max(0, b.length - i)), i);
      return b;
    }),
  );
}

/** JSON values that stress readers: big, negative, fractional and huge numbers, odd strings, nesting. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, -1, 1, 0.5, -0, 1e308, -1e308, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, Number.MAX_SAFE_INTEGER + 2, '', '8/255', '8/0', '__proto__', '../../x', null, true, false, [], {}),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 12 }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Nesting far deeper than any real file: recursive walkers must not overflow the stack. */
const deepJson: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 12_000, max: 20_000 }), fc.constantFrom('[', '{"a":'))
  .map(([d, open]) => open.repeat(d) + '0' + (open === '[' ? ']' : '}').repeat(d));

// ------------------------------------------------------------------ config

const VALID_CONFIG = {
  name: 'fuzz',
  seed: 1,
  backend: 'cpu',
  data: { dataset: 'synthetic', synthetic: { height: 8, width: 8, classes: 4, trainSize: 32, testSize: 16 }, augment: { cropPadding: 2 } },
  model: { arch: 'small-cnn', width: 0.25 },
  train: { method: 'pgd-at', epochs: 2, attack: { eps: '8/255', steps: 3 }, hbar: { layers: ['conv1'] } },
  ib: { enabled: true, layers: ['conv3', 'fc1'], mask: { enabled: true, rule: 'code', lowY: 2, highX: 2 } },
  eval: { attacks: ['pgd'], params: { pgd: { eps: 0.03 } } },
};

/** Every key path of a document (objects and arrays), for structured mutation. */
function paths(doc: unknown, at: string[] = []): string[][] {
  if (doc === null || typeof doc !== 'object') return [at];
  return [at, ...Object.entries(doc as object).flatMap(([k, v]) => paths(v, [...at, k]))];
}
const CONFIG_PATHS = paths(VALID_CONFIG).filter((p) => p.length > 0);

/** `doc` with the value at key path `p` replaced (parents made objects where an earlier edit left a scalar). */
function setAt(doc: unknown, p: string[], value: unknown): unknown {
  const put = (o: object, k: string, v: unknown) => Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  const out = structuredClone(doc) as Record<string, unknown>;
  let node = out;
  for (const k of p.slice(0, -1)) {
    if (node[k] === null || typeof node[k] !== 'object') put(node, k, {});
    node = node[k] as Record<string, unknown>;
  }
  put(node, p[p.length - 1], value);
  return out;
}

/** A YAML text: the valid config with 1-3 values replaced, a key dropped, or a tag/alias/anchor spliced in. */
const configText: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.array(fc.tuple(fc.constantFrom(...CONFIG_PATHS), hostileValue), { minLength: 1, maxLength: 3 }).map((edits) => YAML.stringify(edits.reduce((d, [p, v]) => setAt(d, p, v), VALID_CONFIG as unknown))) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...CONFIG_PATHS), fc.constantFrom('!!python/object:os.system', '!foo', '!!binary', '!!set', '!!omap', '&a', '*a', '<<: *a', '%TAG ! x', '\t', '{', '"', ':', '- ', '|')).map(([p, junk]) => YAML.stringify(VALID_CONFIG).replace(new RegExp(`(${p[p.length - 1]}:)`), `$1 ${junk} `)) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...CONFIG_PATHS), deepJson).map(([p, deep]) => YAML.stringify(VALID_CONFIG).replace(new RegExp(`(${p[p.length - 1]}:).*`), `$1 ${deep}`)) },
);

test('fuzz: the config loader (YAML text → validated config): a config or one UserError', { timeout: 60_000 }, () => {
  const file = path.join(dir, 'fuzz.yaml');
  fc.assert(
    fc.property(configText, (text) => {
      fs.writeFileSync(file, text);
      return syncOk(() => loadConfig(file));
    }),
    { seed: SEED.config, numRuns: 250 },
  );
});

test('fuzz: --set overrides on a valid config (any key path, any value text)', { timeout: 60_000 }, () => {
  const file = path.join(dir, 'fuzz-set.yaml');
  fs.writeFileSync(file, YAML.stringify(VALID_CONFIG));
  const key = fc.oneof(fc.constantFrom(...CONFIG_PATHS).map((p) => p.join('.')), fc.string({ maxLength: 12 }));
  const value = fc.oneof(hostileValue.map((v) => JSON.stringify(v) ?? ''), fc.string({ maxLength: 16 }), fc.constantFrom('!!python/object {}', '&a [*a]', '{', '8/0', '.inf', '1e999'));
  const set = fc.oneof(fc.tuple(key, value).map(([k, v]) => `${k}=${v}`), fc.string({ maxLength: 20 }));
  fc.assert(fc.property(fc.array(set, { maxLength: 3 }), (sets) => syncOk(() => loadConfig(file, sets))), { seed: SEED.configSet, numRuns: 200 });
});

test('fuzz: config validation of arbitrary documents (any JSON shape, at any key)', { timeout: 60_000 }, () => {
  const doc = fc.oneof(
    fc.array(fc.tuple(fc.constantFrom(...CONFIG_PATHS), hostileValue), { minLength: 1, maxLength: 4 }).map((edits) => edits.reduce((d, [p, v]) => setAt(d, p, v), VALID_CONFIG as unknown)),
    fc.anything({ maxDepth: 4 }),
  );
  fc.assert(fc.property(doc, (d) => syncOk(() => validateConfig(d, 'fuzz.yaml'))), { seed: SEED.configDoc, numRuns: 400 });
});

// ------------------------------------------------------------------ safetensors and the sidecar

const SAFETENSORS = encodeSafetensors(
  [
    { name: 'a.weight', dtype: 'F32', shape: [2, 3], data: new Float32Array(6).map((_, i) => i) },
    { name: 'a.bias', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'n', dtype: 'I32', shape: [], data: new Int32Array([7]) },
    { name: 'm', dtype: 'U8', shape: [0], data: new Uint8Array(0) },
  ],
  { format: 'pt' },
);

/** A safetensors file whose header is generated (any entries, any offsets), over a small data section. */
const forgedSafetensors = fc
  .tuple(
    fc.array(
      fc.tuple(
        fc.oneof(fc.constantFrom('a', 'b', '__proto__', '__metadata__', 'constructor', ''), fc.string({ maxLength: 6 })),
        fc.record({
          dtype: fc.oneof(fc.constantFrom('F32', 'F64', 'I32', 'I64', 'U8', 'BF16'), hostileValue),
          shape: fc.oneof(fc.array(fc.oneof(fc.nat({ max: 8 }), fc.constantFrom(-1, 2 ** 31, 2 ** 53)), { maxLength: 4 }), hostileValue),
          data_offsets: fc.oneof(fc.tuple(fc.nat({ max: 64 }), fc.nat({ max: 64 })), hostileValue),
        }),
      ),
      { maxLength: 6 },
    ),
    fc.nat({ max: 64 }),
    fc.constantFrom(0, 3, 7),
  )
  .map(([entries, dataLen, pad]) => {
    const json = '{' + entries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',') + '}' + ' '.repeat(pad);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    return Buffer.concat([len, Buffer.from(json), Buffer.alloc(dataLen, 0x3f)]);
  });

test('fuzz: the safetensors decoder (raw bytes, forged headers, valid files with one fault)', { timeout: 60_000 }, () => {
  const input = fc.oneof(fc.uint8Array({ maxLength: 256 }), forgedSafetensors, mutate(SAFETENSORS));
  fc.assert(fc.property(input, (buf) => syncOk(() => decodeSafetensors(buf, 'fuzz.safetensors'))), { seed: SEED.safetensors, numRuns: 1000 });
});

test('fuzz: the checkpoint sidecar and its files (mutated fields, re-signed or not)', { timeout: 60_000 }, async () => {
  const ckDir = path.join(dir, 'ck');
  const param = { name: 'w', kind: 'vector' as const, trainable: true, variable: tf.variable(tf.tensor1d([1, 2, 3])) };
  const saved = await saveCheckpoint(ckDir, 'good', {
    params: [param],
    optimizerState: [{ name: 'w.momentum_buffer', data: new Float32Array(3), shape: [3] }],
    sidecar: { arch: 'x', epoch: 1, step: 0, globalStep: 4, rngState: {}, configHash: 'h', metrics: { acc: 0.5 }, state: { optimizerStarted: true, bestTestAcc: 0.5, accumulator: null } },
  });
  param.variable.dispose();
  const weights = fs.readFileSync(path.join(ckDir, saved.files.weights.file));
  const SIDECAR_PATHS = paths(saved).filter((p) => p.length > 0);
  const input = fc.oneof(
    fc.array(fc.tuple(fc.constantFrom(...SIDECAR_PATHS), hostileValue), { minLength: 1, maxLength: 3 }).map((edits) => ({ sidecar: JSON.stringify(edits.reduce((d, [p, v]) => setAt(d, p, v), saved as unknown)), weights: null as Uint8Array | null })),
    mutate(Buffer.from(JSON.stringify(saved))).map((b) => ({ sidecar: Buffer.from(b).toString('latin1'), weights: null as Uint8Array | null })),
    fc.tuple(fc.constantFrom(...SIDECAR_PATHS), deepJson).map(([p, deep]) => ({ sidecar: JSON.stringify(setAt(saved, p, '@DEEP@')).replace('"@DEEP@"', deep), weights: null as Uint8Array | null })),
    // The weights file with one fault, re-signed in the sidecar so the decoder sees it.
    mutate(weights).map((w) => ({ sidecar: '', weights: w })),
  );
  let k = 0;
  await fc.assert(
    fc.asyncProperty(input, async ({ sidecar, weights: w }) => {
      const tag = `t${k++}`;
      let text = sidecar;
      if (w) {
        const file = `${tag}.${'0'.repeat(12)}.safetensors`;
        fs.writeFileSync(path.join(ckDir, file), w);
        const sc = { ...saved, tag, files: { weights: { file, bytes: w.length, sha256: createHash('sha256').update(w).digest('hex') }, optimizer: saved.files.optimizer } };
        text = JSON.stringify(sc);
      } else text = text.replace('"tag":"good"', `"tag":"${tag}"`);
      fs.writeFileSync(path.join(ckDir, `${tag}.json`), text);
      syncOk(() => readCheckpointSidecar(ckDir, tag));
      return syncOk(() => readCheckpointFiles(ckDir, tag));
    }),
    { seed: SEED.sidecar, numRuns: 300 },
  );
});

// ------------------------------------------------------------------ datasets

const IDX_IMG = encodeIdxImages(new Uint8Array(3 * 4 * 4).map((_, i) => i), 3, 4, 4);
const IDX_LBL = encodeIdxLabels([0, 9, 4]);

test('fuzz: idx parsing (raw bytes and valid files with one fault)', { timeout: 60_000 }, () => {
  const input = fc.oneof(fc.uint8Array({ maxLength: 64 }), mutate(IDX_IMG), mutate(IDX_LBL));
  fc.assert(
    fc.property(input, (buf) => {
      syncOk(() => parseIdxImages(buf, 'fuzz-idx3'));
      return syncOk(() => parseIdxLabels(buf, 'fuzz-idx1', 10));
    }),
    { seed: SEED.idx, numRuns: 1000 },
  );
});

test('fuzz: gzip (bounded inflate) and idx pairs on disk, plain and gzipped, with one fault', { timeout: 60_000 }, async () => {
  const pairDir = path.join(dir, 'idx');
  fs.mkdirSync(pairDir, { recursive: true });
  const gzImg = zlib.gzipSync(IDX_IMG);
  const input = fc.record({
    images: fc.oneof(mutate(IDX_IMG), mutate(gzImg), fc.uint8Array({ maxLength: 48 }).map((b) => Uint8Array.from([0x1f, 0x8b, ...b]))),
    labels: fc.oneof(fc.constant(IDX_LBL), mutate(IDX_LBL), mutate(zlib.gzipSync(IDX_LBL))),
    budget: fc.integer({ min: 0, max: 4096 }),
  });
  await fc.assert(
    fc.asyncProperty(input, async ({ images, labels, budget }) => {
      const img = path.join(pairDir, 'i');
      const lbl = path.join(pairDir, 'l');
      fs.writeFileSync(img, images);
      fs.writeFileSync(lbl, labels);
      await asyncOk(() => gunzipBounded(images, img, budget));
      return asyncOk(() => readIdxPair({ images: img, labels: lbl }));
    }),
    { seed: SEED.gzip, numRuns: 200 },
  );
});

test('fuzz: CIFAR-10/100 record files (sizes, labels, bytes)', { timeout: 60_000 }, async () => {
  const cifarDir = path.join(dir, 'cifar');
  fs.mkdirSync(cifarDir, { recursive: true });
  const good10 = encodeCifarRecords(new Uint8Array(2 * 3072), [3, 9]);
  const good100 = encodeCifarRecords(new Uint8Array(2 * 3072), [50, 99], CIFAR100_FORMAT, [4, 19]);
  const input = fc.record({
    fmt: fc.constantFrom(CIFAR10_FORMAT, CIFAR100_FORMAT),
    files: fc.array(fc.oneof(mutate(good10), mutate(good100), fc.uint8Array({ maxLength: 64 })), { minLength: 1, maxLength: 3 }),
  });
  await fc.assert(
    fc.asyncProperty(input, async ({ fmt, files }) => {
      const names = files.map((b, i) => {
        const f = path.join(cifarDir, `b${i}.bin`);
        fs.writeFileSync(f, b);
        return f;
      });
      return asyncOk(() => readCifarFiles(names, fmt));
    }),
    { seed: SEED.cifar, numRuns: 300 },
  );
});

test('fuzz: MAT-files (v6 and compressed v7, either byte order) with one fault', { timeout: 60_000 }, async () => {
  const vars = svhnVars([1, 10]);
  const files = [matFile(vars), matFile(vars, { compress: true }), matFile(vars, { le: false }), matFile(vars, { le: false, compress: true })];
  const input = fc.oneof(fc.constantFrom(...files).chain((f) => mutate(f)), fc.uint8Array({ maxLength: 300 }));
  await fc.assert(fc.asyncProperty(input, (buf) => asyncOk(() => parseMat(buf, 'fuzz.mat'))), { seed: SEED.mat, numRuns: 300 });
});

test('fuzz: Tiny ImageNet JPEG decoding (a real 64x64 JPEG with one fault, raw bytes)', { timeout: 60_000 }, () => {
  const jpeg = fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'jpeg', 'gray-64.jpg'));
  const out = new Uint8Array(64 * 64 * 3);
  const input = fc.oneof(mutate(jpeg), fc.uint8Array({ maxLength: 128 }).map((b) => Uint8Array.from([0xff, 0xd8, ...b])));
  fc.assert(fc.property(input, (buf) => syncOk(() => decodeTinyJpeg(buf, 'fuzz.JPEG', out, 0))), { seed: SEED.jpeg, numRuns: 300 });
});

// ------------------------------------------------------------------ evaluation state

test('fuzz: the evaluation state file (any JSON, re-signed so the deep checks run; damaged text)', { timeout: 60_000 }, () => {
  const file = path.join(dir, '.state-fuzz.json');
  const want = { key: 'k', n: 10, batchSize: 4, attacks: ['fgsm', 'cw'], numClasses: 3 };
  const good: EvalState = {
    format: 'ibrar-eval-state/1', key: 'k', n: 10, batchSize: 4, doneBatches: 2,
    clean: [0, 1, 2, 0, 1, 2, 0, 1], preds: { fgsm: [0, 0, 0, 0, 0, 0, 0, 0], cw: [1, 1, 1, 1, 1, 1, 1, 1] },
    dist: { cw: [0.1, null, 0.2, null, 0.3, null, 0.4, null] }, seconds: { fgsm: 1, cw: 2 }, extraSums: { fgsm: {}, cw: { queries: 3 } },
  };
  writeEvalState(file, good);
  assert.ok('state' in (readEvalState(file, want) ?? {}), 'the unmodified state is accepted');
  const STATE_PATHS = paths(good).filter((p) => p.length > 0);
  const input = fc.oneof(
    // Re-signed: the file's own hash matches, so every consistency check is exercised.
    fc.array(fc.tuple(fc.constantFrom(...STATE_PATHS), hostileValue), { minLength: 1, maxLength: 3 }).map((edits) => {
      const state = edits.reduce((d, [p, v]) => setAt(d, p, v), good as unknown);
      let sha = 'x';
      try {
        sha = createHash('sha256').update(canonicalJson(state)).digest('hex');
      } catch {
        // not hashable (nothing our writer makes): stays unsigned
      }
      return JSON.stringify({ sha256: sha, state });
    }),
    mutate(Buffer.from(fs.readFileSync(file))).map((b) => Buffer.from(b).toString('latin1')),
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    // A state nested too deeply to hash, at any key.
    fc.tuple(fc.constantFrom(...STATE_PATHS), deepJson).map(([p, deep]) => JSON.stringify({ sha256: 'x', state: setAt(good, p, '@DEEP@') }).replace('"@DEEP@"', deep)),
  );
  fc.assert(
    fc.property(input, (text) => {
      fs.writeFileSync(file, text);
      // Never throws: a state that fails any check is discarded (returned as a problem).
      const res = readEvalState(file, want);
      assert.ok(res === null || 'state' in res || ('problem' in res && typeof res.problem === 'string' && res.problem.length > 0));
      return true;
    }),
    { seed: SEED.evalState, numRuns: 500 },
  );
});
