// Gradients of the ops that training a small CNN / VGG / ResNet uses, on the patched wasm
// backend against the cpu backend: one op at a time (so a failure names the op) and a small
// conv-BN-ReLU-pool-residual-dense network end to end. Also pins the two known wasm gaps that
// callers must work around. Tolerance: |wasm − cpu| ≤ 1e-4·(1 + |cpu|).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';

before(async () => {
  await initBackend('wasm');
  await tf.setBackend('cpu');
  await tf.setBackend('wasm');
});

interface Input {
  data: Float32Array;
  shape: number[];
}

async function on(backend: 'cpu' | 'wasm', inputs: Input[], f: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  try {
    const outs = tf.tidy(() => f(...inputs.map((i) => tf.tensor(i.data, i.shape))));
    const values = outs.map((t) => t.dataSync() as Float32Array);
    tf.dispose(outs);
    return values;
  } finally {
    await tf.setBackend('wasm');
  }
}

function assertClose(got: Float32Array, want: Float32Array, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i] - want[i]) <= 1e-4 * (1 + Math.abs(want[i])))) assert.fail(`${label}: element ${i} is ${got[i]}, cpu says ${want[i]}`);
  }
}

function random(rng: Rng, shape: number[], lo = -1, hi = 1): Input {
  return { data: rng.fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), lo, hi), shape };
}

const T4 = (t: tf.Tensor): tf.Tensor4D => t as tf.Tensor4D;
/** Constants are built in JS so both backends see bit-identical values (their linspace/sin differ in the last bits). */
function constant(shape: number[], value: (i: number, n: number) => number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, (_, i) => value(i, n)), shape);
}
const ramp = (shape: number[], lo: number, hi: number): tf.Tensor => constant(shape, (i, n) => lo + ((hi - lo) * i) / Math.max(n - 1, 1));
const wiggle = (shape: number[]): tf.Tensor => constant(shape, (i) => Math.sin(1 + 0.7 * i));

/** Each maps x: [2,3,4,5] (values in [-1,1)) to some tensor; its gradient is what is compared. */
const OPS: Record<string, (x: tf.Tensor) => tf.Tensor> = {
  relu: (x) => tf.relu(x),
  mean: (x) => tf.mean(x, [1, 2]),
  sum: (x) => tf.sum(x, 0),
  softmax: (x) => tf.softmax(tf.reshape(x, [2, -1])),
  logSoftmax: (x) => tf.logSoftmax(tf.reshape(x, [6, -1])),
  softmaxCrossEntropy: (x) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d([1, 0, 19, 7, 3, 3], 'int32'), 20), tf.reshape(x, [6, 20])),
  avgPoolValid: (x) => tf.avgPool(T4(x), 2, 2, 'valid'),
  avgPoolSame: (x) => tf.avgPool(T4(x), 3, 2, 'same'),
  matMul: (x) => tf.matMul(tf.reshape(x, [6, 20]), tf.reshape(x, [20, 6])),
  matMulTransposeA: (x) => tf.matMul(tf.reshape(x, [6, 20]), tf.reshape(x, [6, 20]), true, false),
  matMulTransposeB: (x) => tf.matMul(tf.reshape(x, [6, 20]), tf.reshape(x, [6, 20]), false, true),
  pad: (x) => tf.pad(x, [
    [0, 0],
    [1, 1],
    [2, 0],
    [0, 0],
  ]),
  transpose: (x) => tf.mul(tf.transpose(x, [0, 3, 1, 2]), ramp([2, 5, 3, 4], 0, 1)),
  sign: (x) => tf.mul(tf.sign(x), tf.square(x)),
  clipByValue: (x) => tf.clipByValue(x, -0.3, 0.4),
  maximum: (x) => tf.maximum(x, tf.mul(x, -0.5)),
  minimum: (x) => tf.minimum(x, ramp([2, 3, 4, 5], -0.5, 0.5)),
  select: (x) => tf.where(tf.greater(ramp([2, 3, 4, 5], -1, 1), 0), tf.mul(x, 2), tf.square(x)),
  abs: (x) => tf.abs(x),
  sqrt: (x) => tf.sqrt(tf.add(tf.abs(x), 0.1)),
  tanh: (x) => tf.tanh(tf.mul(x, 2)),
  atanh: (x) => tf.atanh(tf.mul(x, 0.9)),
  log: (x) => tf.log(tf.add(tf.abs(x), 0.1)),
  exp: (x) => tf.exp(x),
  div: (x) => tf.div(x, tf.add(tf.abs(x), 1)),
  pow: (x) => tf.pow(tf.add(tf.abs(x), 0.1), 2.5),
  rsqrt: (x) => tf.rsqrt(tf.add(tf.abs(x), 0.1)),
  sigmoid: (x) => tf.sigmoid(x),
  max: (x) => tf.max(x, [1, 2]),
  min: (x) => tf.min(x, 3),
  concatSlice: (x) => tf.slice(tf.concat([x, tf.mul(x, 2)], 3), [0, 1, 0, 3], [2, 2, 3, 5]),
  tile: (x) => tf.tile(x, [1, 2, 1, 1]),
  broadcastAdd: (x) => tf.mul(tf.add(x, tf.reshape(tf.sum(x, [0, 1, 2]), [1, 1, 1, 5])), x),
  moments: (x) => {
    const m = tf.moments(x, [0, 1, 2]);
    return tf.concat([m.mean, m.variance]);
  },
  // BatchNorm as the models use it: batch moments, scale and offset always given.
  batchNormTrain: (x) => {
    const m = tf.moments(x, [0, 1, 2]);
    return tf.batchNorm(x, m.mean, m.variance, ramp([5], -1, 1), ramp([5], 0.5, 1.5), 1e-5); // offset, scale
  },
  oneHotPick: (x) => tf.sum(tf.mul(tf.reshape(x, [6, 20]), tf.oneHot(tf.tensor1d([0, 3, 1, 5, 2, 2], 'int32'), 20)), 1),
  leakyRelu: (x) => tf.leakyRelu(x, 0.1),
  elu: (x) => tf.elu(x),
  softplus: (x) => tf.softplus(x),
  logSumExp: (x) => tf.logSumExp(x, 3),
  addN: (x) => tf.addN([x, tf.square(x), tf.mul(x, 3)]),
  l2Normalize: (x) => tf.div(x, tf.norm(x)),
  fusedConvBiasRelu: (x) => tf.fused.conv2d({ x: T4(x), filter: T4(ramp([3, 3, 5, 4], -1, 1)), strides: 1, pad: 'same', bias: tf.ones([4]), activation: 'relu' }),
  fusedMatMulBiasRelu: (x) => tf.fused.matMul({ a: tf.reshape(x, [6, 20]), b: tf.reshape(x, [20, 6]), bias: tf.ones([6]), activation: 'relu' }),
  conv2dTranspose: (x) => tf.conv2dTranspose(T4(tf.slice(x, [0, 0, 0, 0], [2, 3, 4, 2])), T4(ramp([3, 3, 4, 2], -1, 1)), [2, 6, 8, 4], 2, 'same'),
  reverse: (x) => tf.mul(tf.reverse(x, [1, 2]), ramp([5], 0, 1)),
  splitConcat: (x) => tf.concat(tf.split(x, [2, 3], 3).reverse(), 3),
};

test('gradients of every training op agree between wasm and cpu', async () => {
  const x = random(new Rng(11), [2, 3, 4, 5]);
  for (const [name, op] of Object.entries(OPS)) {
    // Weight the output by a fixed non-constant tensor so every output element's gradient matters.
    const grad = (t: tf.Tensor): tf.Tensor[] => [
      tf.grad((a: tf.Tensor) => {
        const y = op(a);
        return tf.sum(tf.mul(y, wiggle(y.shape)));
      })(t),
    ];
    const want = await on('cpu', [x], grad);
    const got = await on('wasm', [x], grad);
    assertClose(got[0], want[0], name);
  }
});

interface NetParams {
  w1: Input;
  gamma: Input;
  beta: Input;
  w2: Input;
  wSkip: Input;
  dense: Input;
  bias: Input;
}

test('a small conv-BN-ReLU-pool-residual-dense net: loss and all gradients agree between wasm and cpu', async () => {
  const rng = new Rng(2024);
  const p: NetParams = {
    w1: random(rng, [3, 3, 3, 8], -0.4, 0.4),
    gamma: random(rng, [8], 0.5, 1.5),
    beta: random(rng, [8], -0.2, 0.2),
    w2: random(rng, [3, 3, 8, 12], -0.2, 0.2),
    wSkip: random(rng, [1, 1, 8, 12], -0.3, 0.3),
    dense: random(rng, [12, 10], -0.5, 0.5),
    bias: random(rng, [10], -0.1, 0.1),
  };
  const images = random(rng, [4, 12, 10, 3], 0, 1);
  const labels = tf.tidy(() => tf.oneHot(tf.tensor1d([3, 0, 9, 3], 'int32'), 10).dataSync() as Float32Array);
  const inputs: Input[] = [images, { data: labels, shape: [4, 10] }, ...Object.values(p)];

  const lossAndGrads = (x: tf.Tensor, y: tf.Tensor, ...params: tf.Tensor[]): tf.Tensor[] => {
    const loss = (img: tf.Tensor, w1: tf.Tensor, gamma: tf.Tensor, beta: tf.Tensor, w2: tf.Tensor, wSkip: tf.Tensor, dense: tf.Tensor, bias: tf.Tensor): tf.Scalar => {
      const c1 = tf.conv2d(T4(img), T4(w1), 1, 'same');
      const m = tf.moments(c1, [0, 1, 2]);
      const h1 = tf.relu(tf.batchNorm(c1, m.mean, m.variance, beta, gamma, 1e-5));
      const p1 = tf.maxPool(T4(h1), 2, 2, 'valid'); // [4,6,5,8]
      const main = tf.conv2d(p1, T4(w2), 2, 'same'); // [4,3,3,12]
      const skip = tf.conv2d(p1, T4(wSkip), 2, 'same');
      const h2 = tf.relu(tf.add(main, skip));
      const feat = tf.mean(h2, [1, 2]);
      const logits = tf.add(tf.matMul(feat, dense), bias);
      return tf.neg(tf.mean(tf.sum(tf.mul(y, tf.logSoftmax(logits)), 1))) as tf.Scalar;
    };
    const { value, grads } = tf.valueAndGrads(loss as (...a: tf.Tensor[]) => tf.Tensor)([x, ...params]);
    return [value, ...grads];
  };
  const want = await on('cpu', inputs, lossAndGrads);
  const got = await on('wasm', inputs, lossAndGrads);
  const names = ['loss', 'dImages', ...Object.keys(p).map((k) => `d${k}`)];
  assert.equal(got.length, names.length);
  names.forEach((name, i) => assertClose(got[i], want[i], name));
  // The network actually trains something: the input gradient is not all zeros.
  assert.ok(want[1].some((v) => Math.abs(v) > 1e-6));
});

test('known wasm gap: tf.gather has no gradient (UnsortedSegmentSum missing); one-hot picking gives the cpu gather gradient', async () => {
  const x = random(new Rng(5), [6, 20]);
  const idx = [0, 3, 3, 5, 19, 7];
  const viaGather = (t: tf.Tensor): tf.Tensor[] => [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.gather(a, tf.tensor1d(idx, 'int32'), 1), ramp([6, 6], 1, 2))))(t)];
  const viaOneHot = (t: tf.Tensor): tf.Tensor[] => [
    // gather(a, idx, axis 1)[:, j] == a · onehot(idx)ᵀ
    tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.matMul(a, tf.oneHot(tf.tensor1d(idx, 'int32'), 20), false, true), ramp([6, 6], 1, 2))))(t),
  ];
  const want = await on('cpu', [x], viaGather);
  assertClose((await on('wasm', [x], viaOneHot))[0], want[0], 'one-hot pick');
  await assert.rejects(on('wasm', [x], viaGather), /UnsortedSegmentSum/);
});

test('known tfjs gap (every backend): tf.batchNorm gradient needs scale and offset', async () => {
  const x = random(new Rng(6), [2, 3, 4, 5]);
  const noScale = (t: tf.Tensor): tf.Tensor[] => [
    tf.grad((a: tf.Tensor) => {
      const m = tf.moments(a, [0, 1, 2]);
      return tf.sum(tf.square(tf.batchNorm(a, m.mean, m.variance, undefined, undefined, 1e-5)));
    })(t),
  ];
  await assert.rejects(on('wasm', [x], noScale));
  await assert.rejects(on('cpu', [x], noScale));
});

test('op gradients leave no tensors behind on wasm', () => {
  const before = tf.memory().numTensors;
  const bytes = tf.memory().numBytes;
  const x = tf.randomUniform([2, 3, 4, 5], -1, 1);
  for (const op of Object.values(OPS)) tf.dispose(tf.tidy(() => tf.grad((a: tf.Tensor) => tf.sum(op(a)))(x)));
  x.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.equal(tf.memory().numBytes, bytes);
});
