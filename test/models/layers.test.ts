// Building blocks against hand-computed values: BatchNorm (batch statistics, in-place running
// update with the unbiased variance, eval mode, gradients), conv padding/stride, linear layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { BatchNorm, Conv2d, Linear } from '../../src/models/layers';
import { ParamBuilder } from '../../src/models/params';

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, label: string): void {
  assert.equal(got.length, want.length, label);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])), `${label}[${i}]: ${got[i]} vs ${want[i]}`);
  }
}

// x: [N=2, H=1, W=2, C=2]; channel 0 holds 1, 2, 3, 6 and channel 1 holds 0, 0, 4, 4.
//   channel 0: mean 3, Σ(x−μ)² = 4+1+0+9 = 14 → biased var 3.5, unbiased 14/3
//   channel 1: mean 2, Σ(x−μ)² = 16        → biased var 4,   unbiased 16/3
const X = [1, 0, 2, 0, 3, 4, 6, 4];
const GAMMA = [2, 0.5];
const BETA = [0.1, -1];

function makeBn(momentum?: number): { bn: BatchNorm; pb: ParamBuilder } {
  const pb = new ParamBuilder(new Rng(0), 'bn-test');
  const bn = new BatchNorm(pb, 'bn', 2, momentum === undefined ? {} : { momentum });
  bn.weight.assign(tf.tensor1d(GAMMA));
  bn.bias.assign(tf.tensor1d(BETA));
  return { bn, pb };
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`BatchNorm2d training: batch stats (biased), running update (unbiased, momentum 0.1) [${backend}]`, async () => {
    await initBackend(backend);
    const { bn, pb } = makeBn();
    const x = tf.tensor4d(X, [2, 1, 2, 2]);
    const y = tf.tidy(() => bn.apply(x, true));
    const mean = [3, 2];
    const biased = [3.5, 4];
    const want = X.map((v, i) => ((v - mean[i % 2]) / Math.sqrt(biased[i % 2] + 1e-5)) * GAMMA[i % 2] + BETA[i % 2]);
    close(y.dataSync(), want, 1e-6, 'train output');
    close(bn.runningMean.dataSync(), [0.9 * 0 + 0.1 * 3, 0.9 * 0 + 0.1 * 2], 1e-7, 'running_mean');
    close(bn.runningVar.dataSync(), [0.9 * 1 + (0.1 * 14) / 3, 0.9 * 1 + (0.1 * 16) / 3], 1e-7, 'running_var');

    // A second training forward compounds: rm ← 0.9·rm + 0.1·μ.
    tf.tidy(() => bn.apply(x, true));
    close(bn.runningMean.dataSync(), [0.9 * 0.3 + 0.3, 0.9 * 0.2 + 0.2], 1e-6, 'running_mean after 2');

    // Eval uses the running statistics and leaves them alone.
    const rm = Array.from(bn.runningMean.dataSync());
    const rv = Array.from(bn.runningVar.dataSync());
    const ye = tf.tidy(() => bn.apply(x, false));
    const wantEval = X.map((v, i) => ((v - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5)) * GAMMA[i % 2] + BETA[i % 2]);
    close(ye.dataSync(), wantEval, 1e-6, 'eval output');
    close(bn.runningMean.dataSync(), rm, 0, 'eval does not update');
    tf.dispose([x, y, ye]);
    for (const p of pb.params()) p.variable.dispose();
  });

  test(`BatchNorm1d and momentum 0.9 (the WRN's final BN) [${backend}]`, async () => {
    await initBackend(backend);
    const { bn, pb } = makeBn(0.9);
    const x = tf.tensor2d(X, [4, 2]); // same values, [N=4, C=2]
    const y = tf.tidy(() => bn.apply(x, true));
    assert.deepEqual(y.shape, [4, 2]);
    close(bn.runningMean.dataSync(), [0.9 * 3, 0.9 * 2], 1e-7, 'running_mean');
    close(bn.runningVar.dataSync(), [0.1 + (0.9 * 14) / 3, 0.1 + (0.9 * 16) / 3], 1e-6, 'running_var');
    tf.dispose([x, y]);
    for (const p of pb.params()) p.variable.dispose();
  });

  test(`BatchNorm training gradient equals the closed form [${backend}]`, async () => {
    await initBackend(backend);
    const { bn, pb } = makeBn();
    const n = 3 * 2 * 2;
    const xs = Array.from({ length: n * 2 }, (_, i) => Math.sin(1.7 * i) + 0.3 * (i % 2));
    const rs = Array.from({ length: n * 2 }, (_, i) => Math.cos(0.9 * i));
    const x = tf.tensor4d(xs, [3, 2, 2, 2]);
    const r = tf.tensor4d(rs, [3, 2, 2, 2]);
    const loss = (input: tf.Tensor): tf.Scalar => tf.sum(tf.mul(bn.apply(input as tf.Tensor4D, true), r));
    const dx = tf.grad(loss)(x);
    const { grads } = tf.variableGrads(() => loss(x), [bn.weight, bn.bias]);
    // Per channel c: x̂ = (x−μ)/σ, dβ = Σ r, dγ = Σ r·x̂, dx = γ/σ · (r − mean(r) − x̂·mean(r·x̂)).
    const wantDx = new Array<number>(n * 2);
    const dGamma = [0, 0];
    const dBeta = [0, 0];
    for (let c = 0; c < 2; c++) {
      const idx = Array.from({ length: n }, (_, k) => 2 * k + c);
      const mu = idx.reduce((a, i) => a + xs[i], 0) / n;
      const sigma = Math.sqrt(idx.reduce((a, i) => a + (xs[i] - mu) ** 2, 0) / n + 1e-5);
      const xhat = idx.map((i) => (xs[i] - mu) / sigma);
      dBeta[c] = idx.reduce((a, i) => a + rs[i], 0);
      dGamma[c] = idx.reduce((a, i, k) => a + rs[i] * xhat[k], 0);
      idx.forEach((i, k) => {
        wantDx[i] = (GAMMA[c] / sigma) * (rs[i] - dBeta[c] / n - (xhat[k] * dGamma[c]) / n);
      });
    }
    close(dx.dataSync(), wantDx, 2e-5, 'dx');
    close(grads[bn.weight.name].dataSync(), dGamma, 2e-5, 'dγ');
    close(grads[bn.bias.name].dataSync(), dBeta, 2e-5, 'dβ');
    tf.dispose([x, r, dx, ...Object.values(grads)]);
    for (const p of pb.params()) p.variable.dispose();
  });
}

test('Conv2d: PyTorch padding and stride, weight [kh,kw,in,out], bias; Linear: x·W + b', async () => {
  await initBackend('wasm');
  const pb = new ParamBuilder(new Rng(0), 'conv-test');
  // 3×3, stride 2, pad 1 on a 4×4 map → 2×2 (PyTorch: ⌊(4 + 2 − 3)/2⌋ + 1 = 2); the window of
  // output (0,0) covers rows/cols −1..1, i.e. the input's top-left 2×2 plus zero padding.
  const conv = new Conv2d(pb, 'c', 1, 1, { kernel: 3, stride: 2, padding: 1, bias: true });
  conv.weight.assign(tf.ones([3, 3, 1, 1]));
  conv.bias!.assign(tf.tensor1d([0.5]));
  const x = tf.tensor4d(Array.from({ length: 16 }, (_, i) => i), [1, 4, 4, 1]);
  const y = tf.tidy(() => conv.apply(x));
  assert.deepEqual(y.shape, [1, 2, 2, 1]);
  // (0,0): rows 0..1 × cols 0..1 → 0+1+4+5; (0,1): rows 0..1 × cols 1..3 → 1+2+3+5+6+7;
  // (1,0): rows 1..3 × cols 0..1 → 4+5+8+9+12+13; (1,1): rows 1..3 × cols 1..3.
  const want = [10, 24, 51, 90].map((v) => v + 0.5);
  close(y.dataSync(), want, 1e-6, 'conv');

  const lin = new Linear(pb, 'l', 3, 2);
  lin.weight.assign(tf.tensor2d([1, 2, 3, 4, 5, 6], [3, 2]));
  lin.bias.assign(tf.tensor1d([0.1, 0.2]));
  const z = tf.tidy(() => lin.apply(tf.tensor2d([1, 1, 2], [1, 3])));
  close(z.dataSync(), [1 + 3 + 10 + 0.1, 2 + 4 + 12 + 0.2], 1e-6, 'linear');
  tf.dispose([x, y, z]);
  for (const p of pb.params()) p.variable.dispose();
});
