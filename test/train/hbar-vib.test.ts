import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { validateConfig } from '../../src/config/load';
import { UserError } from '../../src/errors';
import type { Model } from '../../src/models/types';
import { buildModel } from '../../src/models/registry';
import { isVibModel, wrapVib, VIB_DEFAULTS } from '../../src/models/vib';
import { hbarObjective } from '../../src/train/objectives/hbar';
import { vibObjective } from '../../src/train/objectives/vib';
import { getObjective } from '../../src/train/objectives/registry';
import { tradesCodeLoss } from '../../src/train/objectives/losses';
import type { StepContext } from '../../src/train/objectives/types';
import { hbarSchema } from '../../src/config/schema';
import { train } from '../../src/jobs/train';
import { evaluateRun } from '../../src/jobs/eval';
import { hsicCcaRef } from '../ib/reference64';
import { tinyConfig } from '../helpers/configs';

// A fixed two-layer "network" on 2×2×1 inputs, so every number below can be recomputed by hand:
//   h1 = relu(x W1) [m,3],  h2 = relu(h1 W2) [m,3],  logits = h2 W3 [m,3].
const W1 = [
  [1.5, -0.7, 0.3],
  [0.2, 1.1, -1.4],
  [-0.9, 0.4, 2.0],
  [0.6, 0.8, 0.5],
];
const W2 = [
  [1.0, -0.5, 0.7],
  [0.3, 1.2, -0.2],
  [-0.6, 0.9, 1.1],
];
const W3 = [
  [0.8, -1.1, 0.4],
  [-0.3, 0.6, 1.3],
  [1.2, 0.2, -0.9],
];
const X = [
  [0.1, 0.9, 0.4, 0.7],
  [0.8, 0.2, 0.6, 0.1],
  [0.5, 0.5, 0.9, 0.3],
  [0.3, 0.7, 0.2, 0.8],
  [0.9, 0.1, 0.1, 0.6],
  [0.2, 0.4, 0.8, 0.5],
];
const XADV = X.map((r) => r.map((v, j) => Math.min(1, Math.max(0, v + (j % 2 ? 0.2 : -0.2)))));
const LABELS = [0, 1, 2, 0, 1, 2];

const relu = (a: number[][]) => a.map((r) => r.map((v) => Math.max(0, v)));
const mm = (a: number[][], b: number[][]) => a.map((r) => b[0].map((_, j) => r.reduce((s, v, k) => s + v * b[k][j], 0)));
const forwardRef = (x: number[][]) => {
  const h1 = relu(mm(x, W1));
  const h2 = relu(mm(h1, W2));
  return { h1, h2, logits: mm(h2, W3) };
};
const ceRef = (logits: number[][], labels: number[]) =>
  logits.reduce((s, r, i) => {
    const mx = Math.max(...r);
    const lse = mx + Math.log(r.reduce((a, v) => a + Math.exp(v - mx), 0));
    return s + lse - r[labels[i]];
  }, 0) / logits.length;
const oneHotRef = (labels: number[], k: number) => labels.map((l) => Array.from({ length: k }, (_, j) => (j === l ? 1 : 0)));

function fakeModel(): Model {
  const w = [W1, W2, W3].map((m) => tf.tensor2d(m));
  return {
    arch: 'fake',
    numClasses: 3,
    inputShape: [2, 2, 1],
    tapNames: ['h1', 'h2'],
    maskTap: 'h1',
    params: [],
    forward(x) {
      const h1 = tf.relu(tf.matMul(tf.reshape(x, [x.shape[0], 4]) as tf.Tensor2D, w[0]));
      const h2 = tf.relu(tf.matMul(h1, w[1]));
      return { logits: tf.matMul(h2, w[2]), taps: { h1, h2 } };
    },
    dispose() {
      tf.dispose(w);
    },
  };
}

function context(cfgOverrides: Record<string, unknown>, model: Model): StepContext {
  const cfg = tinyConfig(cfgOverrides);
  return {
    cfg,
    model,
    x: tf.tensor4d(X.flat(), [6, 2, 2, 1]),
    y: tf.tensor1d(LABELS, 'int32'),
    yOneHot: tf.tensor2d(oneHotRef(LABELS, 3)),
    rng: new Rng(42),
    ib: null,
  };
}

/** λx Σ_l HSIC(T_l, X) − λy Σ_l HSIC(T_l, Y) from the naive float64 reference (linear Y kernel). */
function hbarTermsRef(x: number[][], lx: number, ly: number): number {
  const { h1, h2 } = forwardRef(x);
  const y = oneHotRef(LABELS, 3);
  return [h1, h2].reduce((s, t) => s + lx * hsicCcaRef(t, X, 'gaussian') - ly * hsicCcaRef(t, y, 'linear'), 0);
}

test('HBaR default weights follow the published CIFAR-10 scripts and are resolved into the config', () => {
  const weights = (hbar: Record<string, unknown>) => {
    const h = tinyConfig({ train: { method: 'hbar', hbar } }).train.hbar!;
    return { lambdaX: h.lambdaX, lambdaY: h.lambdaY };
  };
  assert.deepEqual(weights({}), { lambdaX: 0.006, lambdaY: 0.05 });
  assert.deepEqual(weights({ base: 'pgd-at' }), { lambdaX: 5e-4, lambdaY: 5e-3 });
  assert.deepEqual(weights({ base: 'trades', lambdaX: 1, lambdaY: 2 }), { lambdaX: 1, lambdaY: 2 });
  assert.equal(hbarSchema.parse({}).lambdaX, undefined, 'the section alone leaves them to the experiment-level resolution');
  assert.equal(getObjective('hbar'), hbarObjective);
  assert.equal(getObjective('vib'), vibObjective);
});

test('HBaR on CE: CE + λx ΣHSIC(X,T) − λy ΣHSIC(Y,T) over every tap equals the hand computation', async () => {
  await initBackend('cpu');
  const model = fakeModel();
  const ctx = context({ train: { method: 'hbar', hbar: { base: 'ce', lambdaX: 0.1, lambdaY: 0.7 } } }, model);
  const before = tf.memory().numTensors;
  const out = tf.tidy(() => {
    const o = hbarObjective.loss(ctx, {});
    return { total: o.total.dataSync()[0], ib: (o.logs.ib as tf.Scalar).dataSync()[0], hx1: o.logs['hx/h1'] as number, hy2: o.logs['hy/h2'] as number };
  });
  assert.equal(tf.memory().numTensors, before, 'no tensor leak');
  const ref = forwardRef(X);
  const terms = hbarTermsRef(X, 0.1, 0.7);
  const want = ceRef(ref.logits, LABELS) + terms;
  assert.ok(Math.abs(terms) > 0.05, `the HSIC terms matter in this test (${terms})`);
  assert.ok(Math.abs(out.total - want) < 1e-4 * Math.max(1, Math.abs(want)), `total ${out.total} vs ${want}`);
  assert.ok(Math.abs(out.ib - terms) < 1e-4, `ib ${out.ib} vs ${terms}`);
  assert.ok(Math.abs(out.hx1 - hsicCcaRef(ref.h1, X, 'gaussian')) < 1e-4);
  assert.ok(Math.abs(out.hy2 - hsicCcaRef(ref.h2, oneHotRef(LABELS, 3), 'linear')) < 1e-4);
  model.dispose();
});

test('HBaR on PGD-AT: CE on x_adv, HSIC terms on the CLEAN taps (HBaR code), not the adversarial ones', async () => {
  await initBackend('cpu');
  const model = fakeModel();
  const ctx = context({ train: { method: 'hbar', hbar: { base: 'pgd-at', lambdaX: 0.1, lambdaY: 0.7 } } }, model);
  const xAdv = tf.tensor4d(XADV.flat(), [6, 2, 2, 1]);
  const total = tf.tidy(() => hbarObjective.loss(ctx, { xAdv }).total.dataSync()[0]);
  const want = ceRef(forwardRef(XADV).logits, LABELS) + hbarTermsRef(X, 0.1, 0.7);
  const wrong = ceRef(forwardRef(XADV).logits, LABELS) + hbarTermsRef(XADV, 0.1, 0.7);
  assert.ok(Math.abs(total - want) < 1e-4, `total ${total} vs ${want}`);
  assert.ok(Math.abs(want - wrong) > 1e-3, 'clean and adversarial taps give different values here');
  xAdv.dispose();
  model.dispose();
});

test('HBaR on TRADES: the adversarial pass adds no HSIC term', async () => {
  await initBackend('cpu');
  const model = fakeModel();
  const ctx = context({ train: { method: 'hbar', hbar: { base: 'trades', lambdaX: 0.1, lambdaY: 0.7 } } }, model);
  const xAdv = tf.tensor4d(XADV.flat(), [6, 2, 2, 1]);
  const total = tf.tidy(() => hbarObjective.loss(ctx, { xAdv }).total.dataSync()[0]);
  const trades = tf.tidy(() => tradesCodeLoss(tf.tensor2d(forwardRef(X).logits), tf.tensor2d(forwardRef(XADV).logits), ctx.yOneHot, 0.5).loss.dataSync()[0]);
  const want = trades + hbarTermsRef(X, 0.1, 0.7);
  assert.ok(Math.abs(total - want) < 1e-4, `total ${total} vs ${want}`);
  xAdv.dispose();
  model.dispose();
});

test('config checks: vib needs the VIB head, hbar refuses ib.enabled', () => {
  assert.throws(() => tinyConfig({ train: { method: 'vib' } }), (e: unknown) => e instanceof UserError && /model\.head/.test(e.message));
  assert.throws(() => tinyConfig({ train: { method: 'hbar' }, ib: { enabled: true } }), (e: unknown) => e instanceof UserError && /ib\.enabled/.test(e.message));
  const ok = validateConfig({ name: 'v', data: { dataset: 'synthetic' }, model: { arch: 'small-cnn', head: 'vib', vib: { k: 8 } }, train: { method: 'vib' } });
  assert.deepEqual(ok.model.vib, { k: 8, samples: 12, beta: 1e-3 });
});

// VIB with known encoder/decoder weights on the fake trunk (encoder reads the last tap h2).
const K = 2;
const WE = [
  [0.5, -0.4, 3.1, 4.2],
  [-0.2, 0.9, 5.5, 2.8],
  [0.7, 0.1, 4.0, 6.0],
];
const BE = [0.1, -0.2, 0.3, 0.4];
const WD = [
  [1.2, -0.8, 0.3],
  [-0.5, 0.6, 1.1],
];
const BD = [0.05, -0.1, 0.2];

function vibModel(samples = 12, beta = 0.01) {
  const model = wrapVib(fakeModel(), { k: K, samples, beta }, new Rng(7));
  const set = (name: string, v: number[] | number[][]) => model.params.find((p) => p.name === name)!.variable.assign(tf.tensor(v));
  set('vib.encoder.weight', WE);
  set('vib.encoder.bias', BE);
  set('vib.decoder.weight', WD);
  set('vib.decoder.bias', BD);
  return model;
}

const softplus = (v: number) => Math.log1p(Math.exp(v));
function encodeRef(x: number[][]) {
  const h = mm(forwardRef(x).h2, WE).map((r) => r.map((v, j) => v + BE[j]));
  return { mu: h.map((r) => r.slice(0, K)), sigma: h.map((r) => r.slice(K).map((s) => softplus(s - 5))) };
}
const decodeRef = (z: number[][]) => mm(z, WD).map((r) => r.map((v, j) => v + BD[j]));

test('VIB loss: CE(dec(μ + σε)) + β·mean KL(N(μ,σ²)‖N(0,I)) equals the hand computation', async () => {
  await initBackend('cpu');
  const model = vibModel(12, 0.01);
  assert.ok(isVibModel(model));
  const ctx = context({ model: { arch: 'small-cnn', head: 'vib' }, train: { method: 'vib' } }, model);
  const out = tf.tidy(() => {
    const o = vibObjective.loss(ctx, {});
    return { total: o.total.dataSync()[0], kl: (o.logs.kl as tf.Scalar).dataSync()[0], ce: (o.logs.ce as tf.Scalar).dataSync()[0] };
  });
  const { mu, sigma } = encodeRef(X);
  const eps = new Rng(42).fork('vib').fillNormal(new Float32Array(6 * K));
  const z = mu.map((r, i) => r.map((m, k) => m + sigma[i][k] * eps[i * K + k]));
  const ce = ceRef(decodeRef(z), LABELS);
  const kl = mu.reduce((s, r, i) => s + 0.5 * r.reduce((a, m, k) => a + m * m + sigma[i][k] ** 2 - 2 * Math.log(sigma[i][k]) - 1, 0), 0) / 6;
  assert.ok(Math.abs(out.ce - ce) < 1e-5, `ce ${out.ce} vs ${ce}`);
  assert.ok(Math.abs(out.kl - kl) < 1e-4 * kl, `kl ${out.kl} vs ${kl}`);
  assert.ok(Math.abs(out.total - (ce + 0.01 * kl)) < 1e-4, `total ${out.total} vs ${ce + 0.01 * kl}`);
  model.dispose();
});

test('VIB evaluation: log of the mean of 12 softmaxes with fixed noise; deterministic; attacks get a gradient through it', async () => {
  await initBackend('cpu');
  const model = vibModel(12);
  const x = tf.tensor4d(X.flat(), [6, 2, 2, 1]);
  const got = tf.tidy(() => model.forward(x, { training: false }).logits.arraySync() as number[][]);
  const again = tf.tidy(() => model.forward(x, { training: false }).logits.arraySync() as number[][]);
  assert.deepEqual(got, again, 'the evaluated classifier is a deterministic function of x');
  const { mu, sigma } = encodeRef(X);
  for (let i = 0; i < 6; i++) {
    const mean = [0, 0, 0];
    for (let s = 0; s < 12; s++) {
      const z = mu[i].map((m, k) => m + sigma[i][k] * model.evalNoise[s * K + k]);
      const l = decodeRef([z])[0];
      const mx = Math.max(...l);
      const e = l.map((v) => Math.exp(v - mx));
      const sum = e.reduce((a, b) => a + b, 0);
      e.forEach((v, c) => (mean[c] += v / sum / 12));
    }
    for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[i][c] - Math.log(mean[c])) < 1e-5, `example ${i} class ${c}: ${got[i][c]} vs ${Math.log(mean[c])}`);
  }
  // One example of the same batch alone gives the same output (no batch coupling).
  const single = tf.tidy(() => model.forward(tf.slice(x, [2, 0, 0, 0], [1, -1, -1, -1]), { training: false }).logits.arraySync() as number[][]);
  single[0].forEach((v, c) => assert.ok(Math.abs(v - got[2][c]) < 1e-6));
  const g = tf.tidy(() =>
    tf.grad((xx: tf.Tensor) => tf.neg(tf.mean(tf.sum(tf.mul(tf.oneHot(tf.tensor1d(LABELS, 'int32'), 3), model.forward(xx as tf.Tensor4D, { training: false }).logits), 1))))(x).arraySync() as number[][][][],
  );
  const flat = g.flat(3);
  assert.ok(flat.every(Number.isFinite) && flat.some((v) => Math.abs(v) > 1e-6), 'finite, non-zero input gradient');
  // Same seed → same noise; another seed → another.
  const other = wrapVib(fakeModel(), { ...VIB_DEFAULTS, k: K }, new Rng(8));
  assert.notDeepEqual(Array.from(other.evalNoise), Array.from(model.evalNoise));
  const same = wrapVib(fakeModel(), { ...VIB_DEFAULTS, k: K }, new Rng(7));
  assert.deepEqual(Array.from(same.evalNoise), Array.from(model.evalNoise));
  tf.dispose(x);
  [model, other, same].forEach((m) => m.dispose());
});

test('VIB and HBaR(PGD-AT) train end to end; the VIB checkpoint evaluates under PGD', async () => {
  const vib = await train({ cfg: tinyConfig({ model: { head: 'vib', vib: { k: 16 } }, train: { method: 'vib', epochs: 3 } }) });
  const last = vib.records[vib.records.length - 1];
  assert.ok(last.train_acc > 0.6, `VIB learns (train acc ${last.train_acc})`);
  assert.ok(typeof last.kl === 'number' && last.kl > 0);
  const { report } = await evaluateRun({ runDir: vib.runDir, checkpoint: 'last', attacks: ['pgd'], eps: 0.1, steps: 2, n: 64, batchSize: 64, seed: 0 });
  assert.ok(report && report.clean_acc > 0.5 && report.attacks[0].robust_acc <= report.clean_acc);
  const model = buildModel(tinyConfig({ model: { head: 'vib', vib: { k: 16 } }, train: { method: 'vib' } }).model, 4, [8, 8, 3], new Rng(3).fork('init'));
  assert.ok(isVibModel(model) && model.arch === 'small-cnn', 'the VIB head keeps the base architecture name (checkpoints)');
  model.dispose();
  const hbar = await train({ cfg: tinyConfig({ train: { method: 'hbar', epochs: 1, hbar: { base: 'pgd-at' }, attack: { steps: 2 } } }) });
  const r = hbar.records[0];
  assert.ok(typeof r['hx/conv1'] === 'number' && typeof r['hy/fc1'] === 'number', 'HSIC of every tap is logged');
  assert.ok(Number.isFinite(r.train_loss));
});
