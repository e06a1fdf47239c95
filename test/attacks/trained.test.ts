// End-to-end on a model trained here: softmax regression on separable 4-class synthetic
// images (NHWC [6,6,1]), a few hundred plain gradient-descent steps. A large-ε PGD breaks it,
// ε = 0 changes nothing, black-box Square hurts it, and AutoAttack's bookkeeping holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { getAttack } from '../../src/attacks/registry';
import { ceMean, oneHot } from '../../src/attacks/common';
import type { AttackTarget } from '../../src/attacks/types';
import { accuracy } from './helpers';

const H = 6;
const K = 4;
const N = 80;
let W: tf.Variable;
let b: tf.Variable;
let target: AttackTarget;
let x: tf.Tensor4D;
let y: tf.Tensor1D;
let labels: Int32Array;
let clean: number;

before(async () => {
  await initBackend('wasm');
  const rng = new Rng(42);
  const d = H * H;
  const protos = Array.from({ length: K }, () => rng.fillUniform(new Float32Array(d), 0.4, 0.6));
  const xs = new Float32Array(N * d);
  labels = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    labels[i] = i % K;
    for (let j = 0; j < d; j++) xs[i * d + j] = Math.min(1, Math.max(0, protos[labels[i]][j] + 0.1 * rng.normal()));
  }
  x = tf.tensor4d(xs, [N, H, H, 1]);
  y = tf.tensor1d(labels, 'int32');
  W = tf.variable(tf.zeros([d, K]));
  b = tf.variable(tf.zeros([K]));
  target = { numClasses: K, logits: (xi) => tf.tidy(() => tf.add(tf.matMul(tf.reshape(xi, [xi.shape[0], d]), W), b)) };
  const yOh = oneHot(y, K);
  const opt = tf.train.sgd(0.5);
  for (let s = 0; s < 300; s++) tf.dispose(opt.minimize(() => ceMean(target.logits(x), yOh), true) ?? []);
  opt.dispose();
  yOh.dispose();
  clean = accuracy(target, x, labels);
});

after(() => tf.dispose([W, b, x, y]));

test('the model learns the task', () => {
  assert.ok(clean >= 0.95, `clean accuracy ${clean}`);
});

test('FGSM with ε = 0 changes nothing', async () => {
  const res = await getAttack('fgsm').run({ target, rng: new Rng(0) }, x, y, { eps: 0 });
  assert.deepEqual(Array.from(res.xAdv.dataSync()), Array.from(x.dataSync()));
  assert.equal(accuracy(target, res.xAdv, labels), clean);
  res.xAdv.dispose();
});

test('PGD with a large ε (0.5) drives accuracy to ≈ 0', async () => {
  const res = await getAttack('pgd').run({ target, rng: new Rng(1) }, x, y, { eps: 0.5, steps: 20 });
  const acc = accuracy(target, res.xAdv, labels);
  assert.ok(acc <= 0.02, `accuracy under PGD ε=0.5: ${acc}`);
  res.xAdv.dispose();
});

test('APGD-CE is at least as strong as PGD (same ε and steps)', async () => {
  for (const eps of [0.03, 0.05]) {
    const p = await getAttack('pgd').run({ target, rng: new Rng(2) }, x, y, { eps, steps: 10 });
    const a = await getAttack('apgd-ce').run({ target, rng: new Rng(2) }, x, y, { eps, steps: 10 });
    const accP = accuracy(target, p.xAdv, labels);
    const accA = accuracy(target, a.xAdv, labels);
    assert.ok(accA <= accP, `ε ${eps}: APGD ${accA} vs PGD ${accP}`);
    assert.ok(accP < clean, `ε ${eps}: PGD must bite (${accP})`);
    tf.dispose([p.xAdv, a.xAdv]);
  }
});

test('Square (black box, modest budget) reduces accuracy and counts queries', async () => {
  const res = await getAttack('square').run({ target, rng: new Rng(3) }, x, y, { eps: 0.05, queries: 150 });
  const acc = accuracy(target, res.xAdv, labels);
  assert.ok(acc <= clean - 0.3, `accuracy under Square: ${acc} (clean ${clean})`);
  // One initial query per attacked example, at most one more per iteration.
  const attacked = Math.round(clean * N);
  assert.ok(res.queries! >= attacked && res.queries! <= attacked * 151, `queries ${res.queries}`);
  res.xAdv.dispose();
});

test('AutoAttack: robust fractions only fall, and the final one is the accuracy', async () => {
  const res = await getAttack('autoattack').run({ target, rng: new Rng(4) }, x, y, { eps: 0.08, steps: 10, queries: 50 });
  const e = res.extra!;
  const seq = ['robust.clean', 'robust.apgd-ce', 'robust.apgd-t', 'robust.fab-t', 'robust.square'].map((k) => e[k]);
  assert.ok(seq.every((v) => v !== undefined));
  for (let i = 1; i < seq.length; i++) assert.ok(seq[i] <= seq[i - 1], JSON.stringify(e));
  assert.equal(e['robust.clean'], clean);
  assert.ok(Math.abs(accuracy(target, res.xAdv, labels) - seq[seq.length - 1]) < 1e-12);
  assert.ok(seq[1] < clean, 'APGD-CE must bite');
  res.xAdv.dispose();
});

test('every attack lowers the accuracy of the trained model', async () => {
  const params: Record<string, Record<string, unknown>> = {
    fgsm: { eps: 0.05 },
    bim: { eps: 0.05, alpha: 0.01 },
    pgd: { eps: 0.05 },
    'pgd-l2': { eps: 0.5, alpha: 0.1 },
    nifgsm: { eps: 0.05, alpha: 0.01 },
    cw: { c: 1, steps: 50 },
    fab: { eps: 0.05 },
    'fab-t': { eps: 0.05, steps: 10 },
    'apgd-ce': { eps: 0.05 },
    'apgd-dlr': { eps: 0.05, steps: 10 },
    'apgd-t': { eps: 0.05, steps: 10 },
  };
  for (const [name, p] of Object.entries(params)) {
    const res = await getAttack(name).run({ target, rng: new Rng(6) }, x, y, p);
    const acc = accuracy(target, res.xAdv, labels);
    assert.ok(acc <= clean - 0.2, `${name}: accuracy ${acc} (clean ${clean})`);
    res.xAdv.dispose();
  }
});
