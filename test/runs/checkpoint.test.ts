import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { UserError } from '../../src/errors';
import type { NamedParam, ParamKind } from '../../src/models/types';
import {
  copyCheckpoint,
  fromTorchLayout,
  listCheckpoints,
  loadCheckpoint,
  saveCheckpoint,
  toTorchLayout,
  type CheckpointInfo,
  type OptimizerSlot,
} from '../../src/runs/checkpoint';
import { decodeSafetensors } from '../../src/runs/safetensors';

let tmp: string;
before(async () => {
  await initBackend('cpu');
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-ckpt-'));
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

let dirCount = 0;
const newDir = () => path.join(tmp, `c${dirCount++}`);

/** Distinct values per element so any transpose mistake shows. */
function ramp(n: number, offset: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => offset + i * 0.5 - n / 7);
}

interface Spec {
  name: string;
  shape: number[];
  kind: ParamKind;
  trainable?: boolean;
}

const SMALL: Spec[] = [
  { name: 'conv1.weight', shape: [3, 2, 2, 4], kind: 'conv' }, // [kh, kw, in, out]
  { name: 'bn1.weight', shape: [4], kind: 'vector' },
  { name: 'bn1.running_var', shape: [4], kind: 'vector', trainable: false },
  { name: 'fc.weight', shape: [5, 3], kind: 'linear' }, // [in, out]
  { name: 'fc.bias', shape: [3], kind: 'vector' },
];

function makeParams(specs: Spec[], seed = 0): NamedParam[] {
  return specs.map((s, k) => {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const variable = tf.variable(tf.tensor(ramp(n, seed + 10 * k), s.shape), s.trainable ?? true, `${s.name}-${seed}-${Math.random()}`);
    return { name: s.name, variable, kind: s.kind, trainable: s.trainable ?? true };
  });
}

function snapshot(params: NamedParam[]): Float32Array[] {
  return params.map((p) => Float32Array.from(p.variable.dataSync() as Float32Array));
}

function perturb(params: NamedParam[]): void {
  for (const p of params) tf.tidy(() => p.variable.assign(tf.fill(p.variable.shape, -99)));
}

function dispose(params: NamedParam[]): void {
  for (const p of params) p.variable.dispose();
}

const info = (over: Partial<CheckpointInfo> = {}): CheckpointInfo => ({
  arch: 'small-cnn',
  epoch: 3,
  step: 0,
  globalStep: 120,
  rngState: { data: [1, 2, 3, 4], init: [5, 6, 7, 4294967295] },
  configHash: 'abc123',
  metrics: { test_acc: 0.5, loss: NaN },
  mask: [1, 0, 1, 1],
  state: { bestTestAcc: 0.5, note: 'x' },
  ...over,
});

function momentum(params: NamedParam[]): OptimizerSlot[] {
  return params
    .filter((p) => p.trainable)
    .map((p, k) => ({ name: `${p.name}.momentum_buffer`, shape: [...p.variable.shape], data: ramp(p.variable.size, 100 + k) }));
}

function isUserError(re: RegExp, fileRe?: RegExp, whereRe?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof UserError, `expected UserError, got ${String(err)}`);
    assert.match(err.message, re);
    if (fileRe) assert.match(err.file ?? '', fileRe);
    if (whereRe) assert.match(err.where ?? '', whereRe);
    return true;
  };
}

test('layout helpers: conv [kh,kw,in,out] ↔ [out,in,kh,kw], linear [in,out] ↔ [out,in]', () => {
  // conv kh=1, kw=2, in=1, out=2: tfjs element [y,x,i,o] = 10x + o → torch [o,i,y,x].
  const conv = new Float32Array([0, 1, 10, 11]); // [0,0,0,0], [0,0,0,1], [0,1,0,0], [0,1,0,1]
  assert.deepEqual(Array.from(toTorchLayout(conv, [1, 2, 1, 2], 'conv')), [0, 10, 1, 11]);
  assert.deepEqual(Array.from(fromTorchLayout(new Float32Array([0, 10, 1, 11]), [1, 2, 1, 2], 'conv')), [0, 1, 10, 11]);
  // linear in=2, out=3: [[1,2,3],[4,5,6]] → [[1,4],[2,5],[3,6]].
  assert.deepEqual(Array.from(toTorchLayout(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], 'linear')), [1, 4, 2, 5, 3, 6]);
  const x = ramp(3 * 2 * 2 * 4, 0);
  assert.deepEqual(fromTorchLayout(toTorchLayout(x, [3, 2, 2, 4], 'conv'), [3, 2, 2, 4], 'conv'), x);
});

test('save → perturb → load restores every variable; optimizer slots and sidecar round-trip', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  const want = snapshot(params);
  const slots = momentum(params);
  const before = tf.memory().numTensors;
  const saved = await saveCheckpoint(dir, 'last', { params, optimizerState: slots, sidecar: info() });
  assert.equal(saved.format, 'ibrar-checkpoint/1');
  assert.deepEqual(saved.tensors, SMALL.map((s) => s.name));
  assert.deepEqual(saved.optimizer.map((s) => s.kind), ['conv', 'vector', 'linear', 'vector']); // inferred from the params
  for (const f of ['last.json', 'last.safetensors', 'last.optim.safetensors', saved.files.weights.file, saved.files.optimizer!.file]) {
    assert.ok(fs.existsSync(path.join(dir, f)), f);
  }
  assert.deepEqual(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);

  perturb(params);
  const loaded = loadCheckpoint(dir, 'last', { arch: 'small-cnn', params });
  snapshot(params).forEach((v, i) => assert.deepEqual(v, want[i], SMALL[i].name));
  assert.equal(tf.memory().numTensors, before);

  assert.equal(loaded.optimizerState.length, slots.length);
  loaded.optimizerState.forEach((s, i) => {
    assert.equal(s.name, slots[i].name);
    assert.deepEqual(s.shape, slots[i].shape);
    assert.deepEqual(s.data, slots[i].data);
  });
  const sc = loaded.sidecar;
  assert.equal(sc.epoch, 3);
  assert.equal(sc.globalStep, 120);
  assert.deepEqual(sc.rngState, { data: [1, 2, 3, 4], init: [5, 6, 7, 4294967295] });
  assert.equal(sc.metrics.test_acc, 0.5);
  assert.ok(Number.isNaN(sc.metrics.loss), 'NaN metric survives as NaN');
  assert.deepEqual(sc.mask, [1, 0, 1, 1]);
  assert.deepEqual(sc.state, { bestTestAcc: 0.5, note: 'x' });
  // A bare params list also loads (names + shapes checked, no arch name).
  perturb(params);
  loadCheckpoint(dir, 'last', params);
  snapshot(params).forEach((v, i) => assert.deepEqual(v, want[i]));
  dispose(params);
});

test('the weights file is a PyTorch state_dict: names as given, [out,in,kh,kw] and [out,in] layouts', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  await saveCheckpoint(dir, 'last', { params, sidecar: info() });
  const { tensors, metadata } = decodeSafetensors(fs.readFileSync(path.join(dir, 'last.safetensors')), 'last.safetensors');
  assert.equal(metadata.format, 'pt');
  assert.deepEqual([...tensors.keys()].sort(), SMALL.map((s) => s.name).sort());

  const conv = tensors.get('conv1.weight')!;
  assert.deepEqual(conv.shape, [4, 2, 3, 2]); // [out, in, kh, kw]
  const src = params[0].variable.dataSync();
  const [kh, kw, ci, co] = [3, 2, 2, 4];
  for (let o = 0; o < co; o++)
    for (let i = 0; i < ci; i++)
      for (let y = 0; y < kh; y++)
        for (let x = 0; x < kw; x++) {
          assert.equal(conv.data[((o * ci + i) * kh + y) * kw + x], src[((y * kw + x) * ci + i) * co + o]);
        }
  const fc = tensors.get('fc.weight')!;
  assert.deepEqual(fc.shape, [3, 5]); // [out, in]
  const fsrc = params[3].variable.dataSync();
  for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) assert.equal(fc.data[o * 5 + i], fsrc[i * 3 + o]);
  assert.deepEqual(tensors.get('bn1.running_var')!.data, params[2].variable.dataSync());
  assert.equal(fs.existsSync(path.join(dir, 'last.optim.safetensors')), false, 'no optimizer file without optimizer state');
  dispose(params);
});

test('a checkpoint of another architecture is rejected, naming file and tensor, and nothing is assigned', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  await saveCheckpoint(dir, 'last', { params, sidecar: info() });

  assert.throws(() => loadCheckpoint(dir, 'last', { arch: 'vgg16', params }), isUserError(/checkpoint is for architecture 'small-cnn', the model is 'vgg16'/, /last\.json$/, /^arch$/));

  const wider = makeParams(SMALL.map((s) => (s.name === 'fc.weight' ? { ...s, shape: [5, 4] } : s)), 7);
  const before = snapshot(wider);
  assert.throws(
    () => loadCheckpoint(dir, 'last', { arch: 'small-cnn', params: wider }),
    isUserError(/shape \[3, 5\], the model needs \[4, 5\] \(PyTorch layout\)/, /last\.[0-9a-f]{12}\.safetensors$/, /tensor 'fc\.weight'/),
  );
  snapshot(wider).forEach((v, i) => assert.deepEqual(v, before[i], 'untouched after a failed load'));

  const extraParam = makeParams([...SMALL, { name: 'fc2.bias', shape: [2], kind: 'vector' }], 3);
  assert.throws(() => loadCheckpoint(dir, 'last', extraParam), isUserError(/parameter missing from the checkpoint/, /safetensors$/, /tensor 'fc2\.bias'/));
  const fewer = makeParams(SMALL.slice(0, 3), 5);
  assert.throws(() => loadCheckpoint(dir, 'last', fewer), isUserError(/has no parameter of this name/, /safetensors$/, /tensor 'fc\.bias'/));
  dispose(params);
  dispose(wider);
  dispose(extraParam);
  dispose(fewer);
});

test('a modified or truncated data file fails the hash check', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  const saved = await saveCheckpoint(dir, 'last', { params, optimizerState: momentum(params), sidecar: info() });
  const wfile = path.join(dir, saved.files.weights.file);
  const bytes = fs.readFileSync(wfile);
  bytes[bytes.length - 1] ^= 0x01; // flip one bit of the last float
  fs.writeFileSync(wfile, bytes);
  assert.throws(() => loadCheckpoint(dir, 'last', params), isUserError(/SHA-256 [0-9a-f]{64} does not match the sidecar's/, new RegExp(saved.files.weights.file)));
  fs.writeFileSync(wfile, bytes.subarray(0, bytes.length - 8));
  assert.throws(() => loadCheckpoint(dir, 'last', params), isUserError(/bytes, the sidecar records \d+: truncated or replaced/));
  const ofile = path.join(dir, saved.files.optimizer!.file);
  fs.rmSync(ofile);
  const listing = listCheckpoints(dir);
  assert.equal(listing.length, 1);
  assert.equal(listing[0].complete, false);
  dispose(params);
});

test('a sidecar with a bad field is rejected naming the field', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  await saveCheckpoint(dir, 'last', { params, sidecar: info() });
  const file = path.join(dir, 'last.json');
  const sc = JSON.parse(fs.readFileSync(file, 'utf8'));
  sc.files.weights.sha256 = 'zz';
  fs.writeFileSync(file, JSON.stringify(sc));
  assert.throws(() => loadCheckpoint(dir, 'last', params), isUserError(/invalid checkpoint sidecar: 64 lowercase hex digits/, /last\.json$/, /^files\.weights\.sha256$/));
  fs.writeFileSync(file, '{"format": ');
  assert.throws(() => loadCheckpoint(dir, 'last', params), isUserError(/sidecar is not valid JSON/, /last\.json$/));
  dispose(params);
});

function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(r.stdout.toString());
}

test('a save interrupted before its commit leaves the previous checkpoint loadable; the next save cleans up', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  await saveCheckpoint(dir, 'last', { params, optimizerState: momentum(params), sidecar: info({ epoch: 1 }) });
  const v1 = snapshot(params);

  // Simulate a process killed mid-save of epoch 2: the new content-named weights file got
  // written, the optimizer temp file is half-written, the sidecar was never replaced.
  const pid = deadPid();
  fs.writeFileSync(path.join(dir, 'last.0123456789ab.safetensors'), Buffer.from('new weights, never committed'));
  fs.writeFileSync(path.join(dir, `.last.fedcba987654.optim.safetensors.${pid}.deadbeef.tmp`), Buffer.alloc(100));
  fs.writeFileSync(path.join(dir, `.last.json.${pid}.0badf00d.tmp`), '{"format":');

  perturb(params);
  const { sidecar } = loadCheckpoint(dir, 'last', { arch: 'small-cnn', params });
  assert.equal(sidecar.epoch, 1);
  snapshot(params).forEach((v, i) => assert.deepEqual(v, v1[i]));
  assert.equal(listCheckpoints(dir, { verify: true })[0].complete, true);

  // The next save removes the dead process's leftovers and the orphan data file.
  await saveCheckpoint(dir, 'last', { params, optimizerState: momentum(params), sidecar: info({ epoch: 2 }) });
  const left = fs.readdirSync(dir).sort();
  assert.deepEqual(left.filter((f) => f.endsWith('.tmp') || f.startsWith('last.0123456789ab')), []);
  assert.equal(left.filter((f) => /^last\.[0-9a-f]{12}\.safetensors$/.test(f)).length, 1);
  assert.equal(left.filter((f) => /^last\.[0-9a-f]{12}\.optim\.safetensors$/.test(f)).length, 1);
  assert.equal(loadCheckpoint(dir, 'last', params).sidecar.epoch, 2);
  dispose(params);
});

test('a first save that never committed: clear error and an incomplete listing', () => {
  const dir = newDir();
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'best.safetensors'), 'partial');
  const params = makeParams(SMALL);
  assert.throws(() => loadCheckpoint(dir, 'best', params), isUserError(/the sidecar is missing although best\.safetensors exists/, /best\.json$/));
  assert.throws(() => loadCheckpoint(dir, 'nope', params), isUserError(/no checkpoint 'nope'/));
  const listing = listCheckpoints(dir);
  assert.deepEqual(listing.map((l) => [l.tag, l.complete]), [['best', false]]);
  assert.throws(() => loadCheckpoint(dir, '../x', params), isUserError(/checkpoint tag must be/));
  dispose(params);
});

test('overwriting a tag replaces it; copyCheckpoint makes an independent verified copy; listing', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  await saveCheckpoint(dir, 'last', { params, optimizerState: momentum(params), sidecar: info({ epoch: 1 }) });
  copyCheckpoint(dir, 'last', 'best');
  const best = snapshot(params);
  perturb(params);
  await saveCheckpoint(dir, 'last', { params, sidecar: info({ epoch: 2 }) });

  const listing = listCheckpoints(dir, { verify: true });
  assert.deepEqual(listing.map((l) => [l.tag, l.complete, l.sidecar?.epoch]), [['best', true, 1], ['last', true, 2]]);
  assert.equal(fs.existsSync(path.join(dir, 'last.optim.safetensors')), false, 'stale optimizer link removed');

  const loadedBest = loadCheckpoint(dir, 'best', params);
  assert.equal(loadedBest.sidecar.tag, 'best');
  assert.equal(loadedBest.optimizerState.length, 4);
  snapshot(params).forEach((v, i) => assert.deepEqual(v, best[i]));
  loadCheckpoint(dir, 'last', params);
  snapshot(params).forEach((v) => assert.ok(v.every((x) => x === -99)));
  dispose(params);
});

test('memory: save and load leave no tensors behind', async () => {
  const dir = newDir();
  const params = makeParams(SMALL);
  const n0 = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    await saveCheckpoint(dir, 'last', { params, optimizerState: momentum(params), sidecar: info({ epoch: i }) });
    loadCheckpoint(dir, 'last', params);
  }
  assert.equal(tf.memory().numTensors, n0);
  dispose(params);
});
