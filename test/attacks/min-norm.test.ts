// Properties of the minimum-norm attacks (FMN, DeepFool, HopSkipJump) and of the transfer
// attacks (MI-FGSM, DI-FGSM) that need no reference implementation:
//  * on an affine binary classifier z = [0, w·x + b] the minimal perturbation is known in
//    closed form, ‖δ*‖_p = |w·x + b| / ‖w‖_q (q the dual norm), as long as the [0,1] box does
//    not bind (inputs in [0.3, 0.7], distances < 0.3): FMN and HopSkipJump must come close,
//    DeepFool must land at (1 + overshoot)·‖δ*‖ in one step;
//  * HopSkipJump is decision-based (a target whose logits are the one-hot of the argmax gives
//    the same result), stays within its query budget, and its distance never increases;
//  * a stop request between iterations interrupts every new attack without leaking tensors;
//  * transfer attacks query only the surrogate when one is given;
//  * DI-FGSM's resize matrices reproduce tfjs' own bilinear resize (half-pixel centres).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { getAttack } from '../../src/attacks/registry';
import { hsjRun, type HsjParams } from '../../src/attacks/hopskipjump';
import { applySeparable, bilinearPadMatrix, inputDiversity } from '../../src/attacks/difgsm';
import { AttackInterrupted } from '../../src/attacks/interrupt';
import type { AttackTarget } from '../../src/attacks/types';
import { readGolden } from '../helpers/golden';
import { lpDistances, mlpTarget } from './helpers';

const SHAPE: [number, number, number] = [4, 4, 3];
const D = 48;
const N = 4;

interface Linear {
  target: AttackTarget & { dispose(): void; calls: { rows: number } };
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  /** Closed-form minimal distance per example in L∞, L2, L1. */
  dist: { linf: number[]; l2: number[]; l1: number[] };
}

/**
 * z = [0, w·x + b] on flattened NHWC inputs (or [0, tanh(w·x + b)] with `squash`: the same
 * decision boundary, but not affine); every example starts in class 0 at a chosen L2 distance.
 */
function linearCase(seed: number, squash = false): Linear {
  const rng = new Rng(seed);
  const w = rng.fillNormal(new Float32Array(D));
  const xs = rng.fillUniform(new Float32Array(N * D), 0.3, 0.7);
  const wn2 = Math.sqrt(w.reduce((s, v) => s + v * v, 0));
  const wn1 = w.reduce((s, v) => s + Math.abs(v), 0);
  const wnInf = Math.max(...w.map(Math.abs));
  // One b for all rows (the boundary passes through the centre of the box); each row is then
  // shifted along w to its chosen L2 distance, w·x + b = −want·‖w‖₂.
  const b = -0.5 * w.reduce((s, v) => s + v, 0);
  const want = [0.03, 0.05, 0.07, 0.09];
  for (let i = 0; i < N; i++) {
    const row = xs.subarray(i * D, (i + 1) * D);
    const f = row.reduce((s, v, j) => s + v * w[j], b);
    const shift = (-want[i] * wn2 - f) / (wn2 * wn2);
    for (let j = 0; j < D; j++) row[j] += shift * w[j];
  }
  assert.ok(xs.every((v) => v > 0.05 && v < 0.95), 'inputs stay away from the box');
  const f = Array.from({ length: N }, (_, i) => Math.abs(xs.subarray(i * D, (i + 1) * D).reduce((s, v, j) => s + v * w[j], b)));
  // The box must not bind for the closed forms: the L1 optimum moves the largest-|w| pixel
  // alone by f/‖w‖∞, the L∞ optimum every pixel by f/‖w‖₁, the L2 one along w.
  const jMax = w.findIndex((v) => Math.abs(v) === wnInf);
  for (let i = 0; i < N; i++) {
    const v = xs[i * D + jMax] + Math.sign(w[jMax]) * (f[i] / wnInf);
    assert.ok(v > 0 && v < 1, `seed ${seed}: the box binds the L1 optimum of row ${i}`);
  }
  const wT = tf.tensor2d(w, [D, 1]);
  const calls = { rows: 0 };
  const target = {
    numClasses: 2,
    calls,
    logits: (x: tf.Tensor4D) =>
      tf.tidy(() => {
        calls.rows += x.shape[0];
        const a = tf.add(tf.matMul(tf.reshape(x, [x.shape[0], D]), wT), b);
        const z = squash ? tf.tanh(a) : a;
        return tf.concat([tf.zerosLike(z), z], 1) as tf.Tensor2D;
      }),
    dispose: () => wT.dispose(),
  };
  return {
    target,
    x: tf.tensor4d(xs, [N, ...SHAPE]),
    y: tf.tensor1d(new Int32Array(N), 'int32'),
    dist: { linf: f.map((v) => v / wn1), l2: f.map((v) => v / wn2), l1: f.map((v) => v / wnInf) },
  };
}

function disposeCase(c: Linear): void {
  c.target.dispose();
  tf.dispose([c.x, c.y]);
}

before(async () => {
  await initBackend('wasm');
});

for (const [norm, key, tol] of [
  ['Linf', 'linf', 1e-3],
  ['L2', 'l2', 1e-3],
  ['L1', 'l1', 1e-3],
] as const) {
  // The squashed logit: on an exactly affine margin FMN's first ε (‖δ‖ + |m|/‖∇m‖_q) is exact, so
  // in L2 the first step lands on the boundary itself and round-off decides whether it counts;
  // when it does not, every later ε is exact again and the iterate stays there (the authors'
  // code does the same). tanh keeps the boundary and makes the linear estimate overshoot.
  test(`FMN ${norm} finds the closed-form minimal distance of a linear binary classifier (within ${tol * 100}%)`, async (t) => {
    const c = linearCase(11, true);
    const res = await getAttack('fmn').run({ target: c.target, rng: new Rng(0) }, c.x, c.y, { norm });
    const got = Array.from(res.distances!);
    const rel = got.map((g, i) => g / c.dist[key][i] - 1);
    t.diagnostic(`relative excess ${rel.map((r) => r.toExponential(1)).join(' ')}`);
    rel.forEach((r, i) => assert.ok(r >= -1e-4 && r <= tol, `row ${i}: ${got[i]} vs minimal ${c.dist[key][i]}`));
    const measured = lpDistances(res.xAdv, c.x, key);
    measured.forEach((m, i) => assert.ok(Math.abs(m - got[i]) < 1e-5));
    const pred = tf.tidy(() => tf.argMax(c.target.logits(res.xAdv), 1).dataSync());
    assert.ok(pred.every((p) => p === 1), 'every row fooled');
    res.xAdv.dispose();
    disposeCase(c);
  });
}

for (const [norm, key] of [
  ['L2', 'l2'],
  ['Linf', 'linf'],
] as const) {
  test(`DeepFool ${norm} on an affine classifier: one step to (1 + overshoot)·the minimal distance`, async () => {
    const c = linearCase(12);
    const res = await getAttack('deepfool').run({ target: c.target, rng: new Rng(0) }, c.x, c.y, { norm, overshoot: 0.02 });
    Array.from(res.distances!).forEach((g, i) => {
      const want = 1.02 * c.dist[key][i];
      assert.ok(Math.abs(g - want) <= 1e-4 * want, `row ${i}: ${g} vs ${want}`);
    });
    res.xAdv.dispose();
    disposeCase(c);
  });
}

test('HopSkipJump L2 on an affine classifier: distance never increases, ends within 15% of the minimal one, within the budget', async (t) => {
  const c = linearCase(13);
  const p = getAttack('hopskipjump').paramsSchema.parse({ queries: 1000 }) as HsjParams;
  const labels = new Int32Array(N);
  const before = tf.memory().numTensors;
  const r = await hsjRun({ target: c.target, rng: new Rng(1) }, c.x, labels, p, p.queries - 1);
  r.traces.forEach((tr, i) => {
    for (let k = 1; k < tr.length; k++) assert.ok(tr[k] <= tr[k - 1] * (1 + 1e-3), `row ${i}: iterate distance rose at ${k}: ${tr[k - 1]} → ${tr[k]}`);
    assert.ok(tr.length >= 3, `row ${i}: ${tr.length - 1} iterations only`);
  });
  const rel = Array.from(r.dist, (g, i) => g / c.dist.l2[i] - 1);
  t.diagnostic(`relative excess ${rel.map((v) => v.toFixed(3)).join(' ')}; iterations ${r.traces.map((tr) => tr.length - 1).join(' ')}`);
  rel.forEach((v, i) => assert.ok(v >= -1e-4 && v <= 0.15, `row ${i}: ${r.dist[i]} vs minimal ${c.dist.l2[i]}`));
  // The reported distance is the smallest iterate distance (never above the last one).
  r.traces.forEach((tr, i) => assert.ok(Math.abs(r.dist[i] - Math.min(...tr)) <= 1e-6 * r.dist[i]));
  assert.ok(Math.max(...r.queries) <= p.queries - 1, `budget exceeded: ${Math.max(...r.queries)}`);
  assert.equal(c.target.calls.rows, r.queries.reduce((s, q) => s + q, 0), 'every model row is a counted query');
  r.xAdv.dispose();
  assert.equal(tf.memory().numTensors, before);
  disposeCase(c);
});

test('HopSkipJump L∞ on an affine classifier: within 25% of the minimal L∞ distance', async (t) => {
  const c = linearCase(14);
  const res = await getAttack('hopskipjump').run({ target: c.target, rng: new Rng(2) }, c.x, c.y, { norm: 'Linf', queries: 2000 });
  const rel = Array.from(res.distances!, (g, i) => g / c.dist.linf[i] - 1);
  t.diagnostic(`relative excess ${rel.map((v) => v.toFixed(3)).join(' ')}`);
  rel.forEach((v, i) => assert.ok(v >= -1e-4 && v <= 0.25, `row ${i}: ${res.distances![i]} vs minimal ${c.dist.linf[i]}`));
  res.xAdv.dispose();
  disposeCase(c);
});

test('HopSkipJump is decision-based: a one-hot-of-argmax target gives the same result; queries are counted and bounded', async () => {
  const G = readGolden('attacks.json');
  const mlp = mlpTarget(G.model.layers, [3, 4, 4]);
  let rows = 0;
  const counting: AttackTarget = {
    numClasses: mlp.numClasses,
    logits: (x) => {
      rows += x.shape[0];
      return mlp.logits(x);
    },
  };
  const hard: AttackTarget = {
    numClasses: mlp.numClasses,
    logits: (x) => tf.tidy(() => tf.oneHot(tf.argMax(mlp.logits(x), 1), mlp.numClasses).toFloat() as tf.Tensor2D),
  };
  const rng = new Rng(4);
  const n = 6;
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(n * D), 0, 1), [n, ...SHAPE]);
  const labels = Int32Array.from(tf.tidy(() => tf.argMax(mlp.logits(x), 1).dataSync()));
  labels[0] = (labels[0] + 1) % mlp.numClasses; // already misclassified: one query (the clean check), distance 0
  const y = tf.tensor1d(labels, 'int32');
  const params = { queries: 300, eps: 0.4 };
  const soft = await getAttack('hopskipjump').run({ target: counting, rng: new Rng(9) }, x, y, params);
  const hardRes = await getAttack('hopskipjump').run({ target: hard, rng: new Rng(9) }, x, y, params);
  assert.deepEqual(Array.from(hardRes.xAdv.dataSync()), Array.from(soft.xAdv.dataSync()));
  assert.deepEqual(Array.from(hardRes.distances!), Array.from(soft.distances!));
  assert.equal(hardRes.queries, soft.queries);
  assert.equal(rows, soft.queries, 'the reported queries are every row the model saw');
  assert.ok(soft.queries! <= n * params.queries && soft.queries! > n * 200, `queries ${soft.queries}`);
  assert.equal(soft.distances![0], 0);
  tf.dispose([soft.xAdv, hardRes.xAdv, x, y]);
  mlp.dispose();
});

test('a stop request interrupts every new attack between iterations, leaking no tensor', async () => {
  const G = readGolden('attacks.json');
  const mlp = mlpTarget(G.model.layers, [3, 4, 4]);
  const rng = new Rng(5);
  const n = 5;
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(n * D), 0, 1), [n, ...SHAPE]);
  const y = tf.tensor1d(Int32Array.from(tf.tidy(() => tf.argMax(mlp.logits(x), 1).dataSync())), 'int32');
  for (const [name, params] of [
    ['fmn', { norm: 'L1' }],
    ['deepfool', {}],
    ['mifgsm', {}],
    ['difgsm', {}],
    ['hopskipjump', { queries: 500 }],
  ] as const) {
    let calls = 0;
    const yieldPoint = async () => {
      if (++calls === 3) throw new AttackInterrupted();
    };
    const before = tf.memory().numTensors;
    await assert.rejects(getAttack(name).run({ target: mlp, rng: new Rng(0), yieldPoint }, x, y, params), AttackInterrupted, name);
    assert.equal(tf.memory().numTensors, before, `${name} leaked tensors when interrupted`);
  }
  tf.dispose([x, y]);
  mlp.dispose();
});

test('transfer attacks craft on the surrogate when one is given (the target is never queried)', async () => {
  const G = readGolden('attacks.json');
  const mlp = mlpTarget(G.model.layers, [3, 4, 4]);
  const untouchable: AttackTarget = {
    numClasses: mlp.numClasses,
    logits: () => {
      throw new Error('the target was queried');
    },
  };
  const rng = new Rng(6);
  const n = 5;
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(n * D), 0, 1), [n, ...SHAPE]);
  const y = tf.tensor1d(Int32Array.from(tf.tidy(() => tf.argMax(mlp.logits(x), 1).dataSync())), 'int32');
  for (const name of ['mifgsm', 'difgsm']) {
    const viaSurrogate = await getAttack(name).run({ target: untouchable, surrogate: mlp, rng: new Rng(1) }, x, y, { eps: 0.1 });
    const whiteBox = await getAttack(name).run({ target: mlp, rng: new Rng(1) }, x, y, { eps: 0.1 });
    assert.deepEqual(Array.from(viaSurrogate.xAdv.dataSync()), Array.from(whiteBox.xAdv.dataSync()), name);
    tf.dispose([viaSurrogate.xAdv, whiteBox.xAdv]);
  }
  // DI-FGSM that never applies the diversity is MI-FGSM with the same decay.
  const di = await getAttack('difgsm').run({ target: mlp, rng: new Rng(1) }, x, y, { eps: 0.1, decay: 1, diversityProb: 0 });
  const mi = await getAttack('mifgsm').run({ target: mlp, rng: new Rng(1) }, x, y, { eps: 0.1, decay: 1 });
  assert.deepEqual(Array.from(di.xAdv.dataSync()), Array.from(mi.xAdv.dataSync()));
  const diOn = await getAttack('difgsm').run({ target: mlp, rng: new Rng(1) }, x, y, { eps: 0.1, decay: 1, diversityProb: 1, resizeRate: 0.5 });
  assert.notDeepEqual(Array.from(diOn.xAdv.dataSync()), Array.from(mi.xAdv.dataSync()), 'the diversity changes the gradients');
  tf.dispose([di.xAdv, mi.xAdv, diOn.xAdv, x, y]);
  mlp.dispose();
});

test("DI-FGSM's resize matrices equal tfjs' bilinear resize with half-pixel centres (PyTorch align_corners=False), then the zero pad", () => {
  const rng = new Rng(8);
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(2 * 32 * 32 * 3), 0, 1), [2, 32, 32, 3]);
  for (const [size, top, left] of [
    [28, 1, 3],
    [30, 0, 0],
    [31, 0, 0],
  ]) {
    const got = tf.tidy(() => applySeparable(x, tf.tensor2d(bilinearPadMatrix(32, size, 32, top), [32, 32]), tf.tensor2d(bilinearPadMatrix(32, size, 32, left), [32, 32])));
    const want = tf.tidy(() => tf.pad(tf.image.resizeBilinear(x, [size, size], false, true), [[0, 0], [top, 32 - size - top], [left, 32 - size - left], [0, 0]]));
    const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]);
    assert.ok(gap < 1e-5, `size ${size}: ${gap}`);
    tf.dispose([got, want]);
  }
  // The draws: ⌊32·0.9⌋ = 28 ≤ rnd < 32, pads within the remainder; a rate that leaves no size is a UserError.
  const draws = [0.99, 0.99, 0.0, 0.1];
  let k = 0;
  const scripted = { next: () => draws[k++] } as unknown as Rng;
  assert.ok(inputDiversity(scripted, [1, 32, 32, 3], 0.9, 0.5) !== null);
  assert.equal(k, 4);
  assert.throws(() => inputDiversity(new Rng(0), [1, 32, 32, 3], 1.01, 0.5), /resizeRate/);
  x.dispose();
});
