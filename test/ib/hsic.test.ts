import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import {
  ccaTarget,
  hsicCca,
  hsicCcaMany,
  hsicCcaValue,
  hsicNormalized,
  hsicPlain,
  kernelMatrix,
  type HsicOptions,
} from '../../src/ib/hsic';
import { flat, readGolden, worstRatio, type Tol } from '../helpers/golden';
import { centralDiff, hsicCcaRef, hsicNormalizedRef, hsicPlainRef, rows, type Mat } from './reference64';

const golden = readGolden('hsic_kernels.json');

function passes(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol): boolean {
  return worstRatio(got, want, tol) <= 1;
}

function caseTensors(c: any): { X: tf.Tensor; T: tf.Tensor; Y: tf.Tensor2D } {
  const X = tf.tensor(flat(c.inputs.X), c.inputs.X_shape);
  const T = tf.tensor(flat(c.inputs.T), c.inputs.T_shape);
  const Y = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(c.inputs.labels, 'int32'), c.inputs.one_hot_width), 'float32')) as tf.Tensor2D;
  return { X, T, Y };
}

for (const c of golden.cases) {
  test(`kernel matrices match the golden (${c.name})`, async () => {
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    const { X, T, Y } = caseTensors(c);
    const got: Record<string, Float64Array> = {
      gaussian_K_X: kernelMatrix(X, 'gaussian'),
      centred_gaussian_Kc_X: kernelMatrix(X, 'gaussian', 5, true),
      gaussian_K_T: kernelMatrix(T, 'gaussian'),
      linear_K_Y: kernelMatrix(Y, 'linear'),
      centred_linear_Kc_Y: kernelMatrix(Y, 'linear', 5, true),
      gaussian_K_Y: kernelMatrix(Y, 'gaussian'),
    };
    for (const [key, value] of Object.entries(got)) {
      assert.ok(passes(value, flat(c.expected[key]), c.tol[key]), `${key}: worst ratio ${worstRatio(value, flat(c.expected[key]), c.tol[key])}`);
    }
    // The centred kernel really is right-centred only: its rows sum to 0, its columns do not.
    const kc = got.centred_gaussian_Kc_X;
    const m = c.m;
    const colSum = Array.from({ length: m }, (_, j) => kc.reduce((s, v, idx) => (idx % m === j ? s + v : s), 0));
    assert.ok(Math.max(...colSum.map(Math.abs)) > 1e-6, 'K H is not H K H');
    tf.dispose([X, T, Y]);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });

  for (const backend of ['wasm', 'cpu'] as const) {
    test(`HSIC_cca values match the golden (${c.name}, ${backend})`, async () => {
      await initBackend(backend);
      const before = tf.memory().numTensors;
      const { X, T, Y } = caseTensors(c);
      const checks: [string, tf.Tensor, tf.Tensor, HsicOptions][] = [
        ['hsic_T_X_gaussian', T, X, {}],
        ['hsic_X_T_gaussian_swapped_args', X, T, {}],
        ['hsic_T_Y_linear', T, Y, { kernelB: 'linear' }],
        ['hsic_T_Y_gaussian', T, Y, { kernelB: 'gaussian' }],
        ['hsic_T_T_self', T, T, {}],
      ];
      for (const [key, a, b, opts] of checks) {
        const want = c.expected[key] as number;
        const asTensor = tf.tidy(() => hsicCca(a, b, opts).dataSync()[0]);
        const asNumber = hsicCcaValue(a, b, opts);
        assert.ok(passes([asTensor], [want], c.tol[key]), `${key}: ${asTensor} vs ${want}`);
        assert.ok(passes([asNumber], [want], c.tol[key]), `${key} (float64 value): ${asNumber} vs ${want}`);
      }
      // The shared-target form gives the same numbers.
      const many = new Float64Array(2);
      tf.tidy(() => hsicCcaMany(T, [ccaTarget(X, 'gaussian'), ccaTarget(Y, 'linear')], {}, many)).dispose();
      assert.ok(passes([many[0]], [c.expected.hsic_T_X_gaussian], c.tol.hsic_T_X_gaussian));
      assert.ok(passes([many[1]], [c.expected.hsic_T_Y_linear], c.tol.hsic_T_Y_linear));
      tf.dispose([X, T, Y]);
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    });
  }

  test(`the tolerance rejects the wrong-on-purpose values (${c.name})`, async () => {
    await initBackend('wasm');
    const w = c.wrong_on_purpose_values;
    const tx = c.tol.hsic_T_X_gaussian;
    const wantX = c.expected.hsic_T_X_gaussian;
    for (const key of ['hsic_T_X_if_no_centring', 'hsic_T_X_if_variance_not_scaled_by_dim', 'hsic_T_X_if_ridge_eps_not_eps_times_m']) {
      assert.ok(!passes([w[key]], [wantX], tx), `${key} = ${w[key]} must fail against ${wantX}`);
    }
    assert.ok(!passes([w.hsic_T_Y_if_gaussian_used_instead_of_linear], [c.expected.hsic_T_Y_linear], c.tol.hsic_T_Y_linear));
    // …while our own implementation of one of those mistakes reproduces the wrong value:
    // the check discriminates semantics, not round-off.
    const { X, T, Y } = caseTensors(c);
    const ridgeEps = hsicCcaValue(T, X, { eps: 1e-5 / c.m });
    assert.ok(passes([ridgeEps], [w.hsic_T_X_if_ridge_eps_not_eps_times_m], tx), `ridge ε: ${ridgeEps}`);
    assert.ok(!passes([ridgeEps], [wantX], tx));
    const gaussY = hsicCcaValue(T, Y, { kernelB: 'gaussian' });
    assert.ok(!passes([gaussY], [c.expected.hsic_T_Y_linear], c.tol.hsic_T_Y_linear));
    tf.dispose([X, T, Y]);
  });
}

test('flattening order does not matter (NCHW vs NHWC taps give the same HSIC)', async () => {
  await initBackend('wasm');
  const c = golden.cases[1]; // T is [8, 2, 3, 3]
  const { X, T, Y } = caseTensors(c);
  const nhwc = tf.transpose(T, [0, 2, 3, 1]);
  const xNhwc = tf.transpose(X, [0, 2, 3, 1]);
  const a = hsicCcaValue(T, X);
  const b = hsicCcaValue(nhwc, xNhwc);
  assert.ok(Math.abs(a - b) < 1e-6, `${a} vs ${b}`);
  assert.ok(passes([b], [c.expected.hsic_T_X_gaussian], c.tol.hsic_T_X_gaussian));
  tf.dispose([X, T, Y, nhwc, xNhwc]);
});

function randomRows(rng: Rng, m: number, d: number, relu = false): Float32Array {
  const out = new Float32Array(m * d);
  for (let i = 0; i < out.length; i++) {
    const v = rng.normal();
    out[i] = relu ? Math.max(0, v) : v;
  }
  return out;
}

test('0 ≤ HSIC_cca ≤ m − 1, and ≤ k − 1 against linear one-hot labels of k classes', async () => {
  await initBackend('wasm');
  const rng = new Rng(7);
  for (const [m, d, k] of [
    [10, 3, 3],
    [24, 40, 5],
    [40, 7, 2],
  ]) {
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const a = tf.tensor2d(randomRows(rng, m, d, true), [m, d]);
      const b = tf.tensor2d(randomRows(rng, m, 2 * d), [m, 2 * d]);
      const labels = Array.from({ length: m }, (_, i) => i % k);
      const y = tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), k), 'float32');
      for (const [x, z, opts] of [
        [a, b, {}],
        [a, a, {}],
        [b, a, { sigma: 0.5 }],
        [a, y, { kernelB: 'linear' }],
        [a, y, {}],
      ] as [tf.Tensor, tf.Tensor, HsicOptions][]) {
        const h = hsicCcaValue(x, z, opts);
        assert.ok(h >= 0 && h <= m - 1, `HSIC ${h} outside [0, ${m - 1}]`);
        if (z === y) assert.ok(h <= k - 1 + 1e-9, `HSIC(T,Y) ${h} > k − 1 = ${k - 1}`);
      }
      // Self-HSIC with a strong kernel approaches m − 1 (R ≈ H).
      const self = hsicCcaValue(b, b, { sigma: 0.05 });
      assert.ok(self > m - 1.5 && self <= m - 1, `self HSIC ${self}`);
      // Symmetric when both kernels are gaussian; swapping the arguments swaps the kernels.
      assert.ok(Math.abs(hsicCcaValue(a, b) - hsicCcaValue(b, a)) < 1e-9);
      const ay = hsicCcaValue(a, y, { kernelB: 'linear' });
      assert.ok(Math.abs(ay - hsicCcaValue(y, a, { kernelA: 'linear', kernelB: 'gaussian' })) < 1e-9);
    });
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  }
});

function oneHotRows(rng: Rng, m: number, k: number): Float32Array {
  const out = new Float32Array(m * k);
  for (let i = 0; i < m; i++) out[i * k + (i < k ? i : rng.int(k))] = 1;
  return out;
}

test('NaN features give a NaN HSIC, not an exception', async () => {
  await initBackend('wasm');
  tf.tidy(() => {
    const a = tf.tensor2d([1, NaN, 0, 2, 3, 1], [3, 2]);
    const b = tf.tensor2d([1, 0, 2], [3, 1]);
    assert.ok(Number.isNaN(hsicCcaValue(a, b)));
    assert.ok(Number.isNaN(hsicCca(a, b).dataSync()[0]));
  });
});

type Estimator = (a: tf.Tensor, b: tf.Tensor, o: HsicOptions) => tf.Scalar;
type Reference = (a: Mat, b: Mat, kindB: 'gaussian' | 'linear', sigma: number) => number;
const ESTIMATORS: [string, Estimator, Reference][] = [
  ['hsicCca', hsicCca, (a, b, k, s) => hsicCcaRef(a, b, k, s)],
  ['hsicPlain', hsicPlain, hsicPlainRef],
  ['hsicNormalized', hsicNormalized, hsicNormalizedRef],
];

for (const backend of ['cpu', 'wasm'] as const) {
  for (const [name, est, ref] of ESTIMATORS) {
    for (const [kindB, sigma] of [
      ['gaussian', 5],
      ['linear', 5],
      ['gaussian', 2],
    ] as const) {
      test(`${name} value and gradient vs float64 central differences (${kindB} B, σ=${sigma}, ${backend})`, async () => {
        await initBackend(backend);
        const rng = new Rng(100 + sigma * 10 + (kindB === 'linear' ? 1 : 0));
        const m = 7;
        const aShape = [m, 2, 2]; // any rank: flattened to [m, 4]
        const bShape = [m, 3];
        const aData = randomRows(rng, m, 4, false).map((v) => v * 1.5);
        // The linear kernel's real use is one-hot Y, so give it one-hot rows: on generic
        // float32 data its rank-deficient Gram (null space under a ridge λ = 7e-5) is itself
        // uncertain at ~1e-3, which one-hot rows avoid (equal rows, equal round-off).
        const bData = kindB === 'linear' ? oneHotRows(rng, m, 3) : randomRows(rng, m, 3, false);
        const opts: HsicOptions = { sigma, kernelB: kindB };
        const before = tf.memory().numTensors;
        const a = tf.tensor(aData, aShape);
        const b = tf.tensor(bData, bShape);
        const { value, grads } = tf.valueAndGrads((x: tf.Tensor, y: tf.Tensor) => est(x, y, opts))([a, b]);
        const f64 = (xa: number[], xb: number[]): number => ref(rows(xa, m), rows(xb, m), kindB, sigma);
        const a64 = Array.from(aData);
        const b64 = Array.from(bData);
        const want = f64(a64, b64);
        const got = value.dataSync()[0];
        assert.ok(Math.abs(got - want) <= 1e-5 + 1e-5 * Math.abs(want), `value ${got} vs ${want}`);
        const fdA = centralDiff((x) => f64(x, b64), a64, 1e-5);
        const fdB = centralDiff((y) => f64(a64, y), b64, 1e-5);
        for (const [g, fd, label] of [
          [grads[0], fdA, 'd/da'],
          [grads[1], fdB, 'd/db'],
        ] as [tf.Tensor, number[], string][]) {
          assert.deepEqual(g.shape, label === 'd/da' ? aShape : bShape);
          const scale = Math.max(...fd.map(Math.abs));
          assert.ok(scale > 1e-6, `${label}: gradient not trivially zero`);
          // d/db of a linear one-hot kernel goes through (1/λ)² null-space terms, so the
          // float32 Gram of A shows at ~1e-4 of its scale there.
          const atol = (kindB === 'linear' && label === 'd/db' ? 1e-3 : 1e-4) * scale;
          const ratio = worstRatio(g.dataSync(), fd, { rtol: 1e-3, atol });
          assert.ok(ratio <= 1, `${label}: worst ratio ${ratio}\n got ${Array.from(g.dataSync())}\n fd  ${fd}`);
        }
        tf.dispose([a, b, value, ...grads]);
        assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
      });
    }
  }
}

test('hsicCcaMany: gradient of a weighted sum equals the weighted pairwise gradients (cpu)', async () => {
  await initBackend('cpu');
  const rng = new Rng(5);
  const m = 9;
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const t = tf.tensor2d(randomRows(rng, m, 6, true), [m, 6]);
    const x = tf.tensor2d(randomRows(rng, m, 5), [m, 5]);
    const y = tf.cast(tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2], 'int32'), 3), 'float32');
    const targets = [ccaTarget(x, 'gaussian'), ccaTarget(y, 'linear')];
    const w = tf.tensor1d([0.3, -2]);
    const g1 = tf.grad((tt: tf.Tensor) => tf.sum(tf.mul(hsicCcaMany(tt, targets), w)))(t);
    const g2 = tf.grad((tt: tf.Tensor) => tf.sub(tf.mul(0.3, hsicCca(tt, x)), tf.mul(2, hsicCca(tt, y, { kernelB: 'linear' }))))(t);
    const ratio = worstRatio(g1.dataSync(), g2.dataSync(), { rtol: 1e-4, atol: 1e-7 });
    assert.ok(ratio <= 1, `worst ratio ${ratio}`);
  });
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
});
