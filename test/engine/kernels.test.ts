// The kernels ibrar adds to / replaces in the tfjs wasm backend (src/engine/kernels), each
// checked against the pure-JS cpu backend through the gradients that call them, on fixed
// edge cases plus seeded random shapes. Tolerance: |wasm − cpu| ≤ 1e-4·(1 + |cpu|).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { registerWasmKernelPatches } from '../../src/engine/kernels';
import { planBackpropInput } from '../../src/engine/kernels/conv2d-backprop-input';
import { Rng } from '../../src/engine/rng';

type Shape4 = [number, number, number, number];
type Pad = 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]];
type Stride = number | [number, number];

const PATCHED = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'BatchMatMul', 'Sign', 'Identity', 'Cast', 'Maximum', 'Minimum', 'Select', 'Tile'];

// These tests are about the pure-wasm kernels; the optional native ones have their own tests.
process.env.IBRAR_NATIVE = '0';

before(async () => {
  const info = await initBackend('wasm');
  assert.equal(info.active, 'wasm');
  assert.deepEqual([...info.patchedKernels].sort(), [...PATCHED].sort());
  await tf.setBackend('cpu'); // initialise cpu once, so later switches are plain swaps
  await tf.setBackend('wasm');
});

/** Runs `f` on one backend with tensors made there from plain arrays; returns the values. */
async function on(backend: 'cpu' | 'wasm', inputs: { data: Float32Array; shape: number[] }[], f: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(() => f(...inputs.map((i) => tf.tensor(i.data, i.shape))));
  const values = outs.map((t) => t.dataSync() as Float32Array);
  tf.dispose(outs);
  await tf.setBackend('wasm');
  return values;
}

function assertClose(got: Float32Array, want: Float32Array, label: string): void {
  assert.equal(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    const tol = 1e-4 * (1 + Math.abs(want[i]));
    if (!(Math.abs(got[i] - want[i]) <= tol)) assert.fail(`${label}: element ${i} is ${got[i]}, cpu says ${want[i]}`);
  }
}

function random(rng: Rng, shape: number[], lo = -1, hi = 1): { data: Float32Array; shape: number[] } {
  const data = rng.fillUniform(new Float32Array(shape.reduce((a, b) => a * b, 1)), lo, hi);
  return { data, shape };
}

interface ConvCase {
  x: Shape4;
  w: Shape4;
  stride: Stride;
  pad: Pad;
}

function explicit(t: number, b: number, l: number, r: number): Pad {
  return [
    [0, 0],
    [t, b],
    [l, r],
    [0, 0],
  ];
}

const FIXED_CONV: ConvCase[] = [
  { x: [2, 7, 5, 3], w: [3, 2, 3, 4], stride: 1, pad: 'same' },
  { x: [2, 7, 5, 3], w: [3, 2, 3, 4], stride: 2, pad: 'same' },
  { x: [1, 8, 9, 3], w: [3, 3, 3, 5], stride: 2, pad: 'valid' },
  { x: [1, 6, 6, 2], w: [2, 2, 2, 3], stride: 1, pad: 'same' }, // even kernel: asymmetric same padding
  { x: [2, 8, 8, 4], w: [1, 1, 4, 6], stride: 2, pad: 'same' }, // ResNet shortcut
  { x: [2, 9, 7, 2], w: [1, 1, 2, 3], stride: 2, pad: 'valid' }, // last row/col unread: stock dx path
  { x: [2, 6, 7, 3], w: [2, 3, 3, 4], stride: [1, 2], pad: explicit(1, 2, 0, 1) }, // bottom pad > kernel-1: stock dx path
  { x: [2, 8, 6, 4], w: [3, 3, 4, 4], stride: 1, pad: explicit(2, 0, 1, 1) },
  { x: [1, 5, 5, 2], w: [1, 1, 2, 2], stride: 1, pad: explicit(1, 1, 1, 1) }, // pad ≥ kernel: stock dx path
  { x: [1, 5, 4, 1], w: [5, 4, 1, 1], stride: 1, pad: 'valid' }, // kernel = image, one channel
  { x: [3, 10, 10, 2], w: [3, 3, 2, 3], stride: [2, 1], pad: 'valid' },
];

function randomConvCase(rng: Rng): ConvCase {
  const n = 1 + rng.int(3);
  const h = 3 + rng.int(7);
  const w = 3 + rng.int(7);
  const kh = 1 + rng.int(Math.min(3, h));
  const kw = 1 + rng.int(Math.min(3, w));
  const strides: Stride[] = [1, 2, [1, 2], [2, 1]];
  const stride = strides[rng.int(strides.length)];
  const kind = rng.int(3);
  const pad: Pad = kind === 0 ? 'same' : kind === 1 ? 'valid' : explicit(rng.int(3), rng.int(3), rng.int(3), rng.int(3));
  const ci = 1 + rng.int(4);
  return { x: [n, h, w, ci], w: [kh, kw, ci, 1 + rng.int(4)], stride, pad };
}

function convInfo(c: ConvCase): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(c.x, c.w, c.stride, 1, c.pad);
}

async function checkConvGrads(c: ConvCase, rng: Rng, label: string): Promise<void> {
  const info = convInfo(c);
  const inputs = [random(rng, c.x), random(rng, c.w), random(rng, info.outShape)];
  // dW and dx of sum(conv(x, w) · dy): exactly Conv2DBackpropFilter(x, dy) and Conv2DBackpropInput(dy, w).
  const grads = (x: tf.Tensor, w: tf.Tensor, dy: tf.Tensor): tf.Tensor[] => {
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), dy)));
    return g([x, w]);
  };
  const want = await on('cpu', inputs, grads);
  const got = await on('wasm', inputs, grads);
  assertClose(got[1], want[1], `${label} dW`);
  assertClose(got[0], want[0], `${label} dx`);
}

test('registration is idempotent and reports the patched kernels', () => {
  const funcs = PATCHED.map((k) => tf.getKernel(k, 'wasm').kernelFunc);
  assert.deepEqual([...registerWasmKernelPatches()].sort(), [...PATCHED].sort());
  assert.deepEqual(
    PATCHED.map((k) => tf.getKernel(k, 'wasm').kernelFunc),
    funcs,
  );
});

test('Conv2DBackpropFilter / Conv2DBackpropInput match cpu on edge cases', async () => {
  const rng = new Rng(1234);
  for (const c of FIXED_CONV) {
    await checkConvGrads(c, rng, JSON.stringify(c));
  }
});

test('Conv2DBackpropFilter / Conv2DBackpropInput match cpu on 24 random shapes', async () => {
  const rng = new Rng(98765);
  for (let i = 0; i < 24; i++) {
    const c = randomConvCase(rng);
    await checkConvGrads(c, rng, `random #${i} ${JSON.stringify(c)}`);
  }
});

test('Conv2DBackpropInput plans: conv path for stride 1 and 2, stock kernel only when a padding would be negative', () => {
  const plans = FIXED_CONV.map((c) => planBackpropInput(convInfo(c)));
  // 3x2 'same', stride 1 on 7x5: forward pads rows (1,1), cols (0,1) → full-correlation pads (1,1), (1,0).
  assert.deepEqual(plans[0], { pads: [1, 1, 1, 0], zeros: [0, 0, 0, 0] });
  // Same at stride 2: dy rows sit at 1,3,5,7 of the 8-row spread, which needs one row after.
  assert.deepEqual(plans[1], { pads: [0, 1, 0, 0], zeros: [1, 0, 1, 0] });
  // ResNet shortcut 1x1 stride 2 on 8x8: zeros after each dy row/col, no padding.
  assert.deepEqual(plans[4], { pads: [0, 0, 0, 0], zeros: [0, 1, 0, 1] });
  assert.equal(plans[5], null); // valid 1x1 stride 2 on odd sizes: the last input row is never read
  assert.equal(plans[6], null); // explicit bottom pad 2 with a 2-row kernel: dy's last row reads only padding
  assert.equal(plans[8], null); // explicit pad 1 around a 1x1 kernel
  assert.equal(plans.filter((p) => p === null).length, 3);
});

test('MaxPoolGrad routes to the first maximum, also in all-negative and tied windows (hand-computed)', async () => {
  const pool = (x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] => [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid'), dy)))(x)];
  const cases: [number[], number[]][] = [
    [[-3, -1, -2, -5], [0, 7, 0, 0]], // negative window: the stock wasm kernel returns all zeros here
    [[0, 0, 0, 0], [7, 0, 0, 0]], // all tied (as after a ReLU): first in row-major order
    [[1, 2, 2, 1], [0, 7, 0, 0]],
    [[-Infinity, -4, -4, -9], [0, 7, 0, 0]],
  ];
  for (const [x, want] of cases) {
    const [got] = await on('wasm', [{ data: new Float32Array(x), shape: [1, 2, 2, 1] }, { data: new Float32Array([7]), shape: [1, 1, 1, 1] }], pool);
    assert.deepEqual([...got], want, `x = ${x}`);
  }
});

interface PoolCase {
  x: Shape4;
  size: number | [number, number];
  stride: Stride;
  pad: 'same' | 'valid';
  /** How the input values are drawn. */
  values: 'negative' | 'ties' | 'relu' | 'mixed';
}

function poolInput(rng: Rng, c: PoolCase): { data: Float32Array; shape: number[] } {
  const { data, shape } = random(rng, c.x);
  for (let i = 0; i < data.length; i++) {
    if (c.values === 'negative') data[i] -= 2;
    if (c.values === 'ties') data[i] = Math.round(data[i] * 2) / 2;
    if (c.values === 'relu') data[i] = Math.max(0, data[i] - 0.3);
  }
  return { data, shape };
}

test('MaxPoolGrad matches cpu on edge cases and random shapes (negative, tied, post-ReLU inputs)', async () => {
  const rng = new Rng(4242);
  const cases: PoolCase[] = [
    { x: [2, 6, 6, 3], size: 2, stride: 2, pad: 'valid', values: 'negative' },
    { x: [1, 7, 5, 2], size: 3, stride: 2, pad: 'same', values: 'negative' },
    { x: [2, 5, 8, 3], size: [2, 3], stride: [1, 2], pad: 'valid', values: 'mixed' },
    { x: [3, 4, 4, 2], size: 2, stride: 2, pad: 'same', values: 'ties' },
    { x: [1, 6, 6, 4], size: 3, stride: 1, pad: 'same', values: 'ties' },
    { x: [2, 8, 8, 5], size: 2, stride: 2, pad: 'valid', values: 'relu' },
    { x: [1, 5, 7, 1], size: 3, stride: 2, pad: 'valid', values: 'relu' },
  ];
  const kinds: PoolCase['values'][] = ['negative', 'ties', 'relu', 'mixed'];
  for (let i = 0; i < 12; i++) {
    const h = 2 + rng.int(8);
    const w = 2 + rng.int(8);
    const size: [number, number] = [1 + rng.int(Math.min(3, h)), 1 + rng.int(Math.min(3, w))];
    const stride: [number, number] = [1 + rng.int(2), 1 + rng.int(2)];
    cases.push({ x: [1 + rng.int(3), h, w, 1 + rng.int(4)], size, stride, pad: rng.int(2) ? 'same' : 'valid', values: kinds[rng.int(4)] });
  }
  for (const c of cases) {
    const outShape = tf.backend_util.computePool2DInfo(c.x, c.size, c.stride, 1, c.pad).outShape;
    const inputs = [poolInput(rng, c), random(rng, outShape)];
    const grad = (x: tf.Tensor, dy: tf.Tensor): tf.Tensor[] => [
      tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, c.size, c.stride, c.pad), dy)))(x),
    ];
    const want = await on('cpu', inputs, grad);
    const got = await on('wasm', inputs, grad);
    assertClose(got[0], want[0], `maxPool grad ${JSON.stringify(c)}`);
  }
});

test('the gradient kernels leak neither tensors nor backend memory', () => {
  const wasm = tf.engine().findBackend('wasm');
  const rng = new Rng(7);
  const x = tf.tensor(random(rng, [2, 9, 8, 3]).data, [2, 9, 8, 3]) as tf.Tensor4D;
  const w = tf.tensor(random(rng, [3, 3, 3, 4]).data, [3, 3, 3, 4]) as tf.Tensor4D;
  const w1 = tf.tensor(random(rng, [1, 1, 3, 4]).data, [1, 1, 3, 4]) as tf.Tensor4D;
  const steps: [string, () => tf.Tensor[]][] = [
    ['conv stride 1 same', () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same')))([x, w])],
    ['conv stride 2 same', () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same')))([x, w])],
    ['conv 1x1 stride 2 valid (cropped dW, stock dx)', () => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'valid')))([x, w1])],
    ['maxPool 2x2', () => [tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool(a as tf.Tensor4D, 2, 2, 'valid')))(x)]],
    ['maxPool 3x3/2 same', () => [tf.grad((a: tf.Tensor) => tf.sum(tf.maxPool(a as tf.Tensor4D, 3, 2, 'same')))(x)]],
  ];
  for (const [name, step] of steps) {
    tf.dispose(tf.tidy(step)); // warm-up: first calls may allocate lasting caches (none expected)
    const tensors = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    const dataIds = wasm.numDataIds();
    for (let i = 0; i < 3; i++) {
      const sum = tf.tidy(() => tf.addN(step().map((g) => tf.sum(g))));
      assert.ok(Number.isFinite(sum.dataSync()[0]));
      sum.dispose();
    }
    assert.equal(tf.memory().numTensors, tensors, `${name}: tensors`);
    assert.equal(tf.memory().numBytes, bytes, `${name}: bytes`);
    assert.equal(wasm.numDataIds(), dataIds, `${name}: wasm data ids`);
  }
  tf.dispose([x, w, w1]);
});

test('BatchMatMul with transposed operands matches cpu (rank 2 and batched rank 3, all flag pairs)', async () => {
  const rng = new Rng(11);
  for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
    for (const batch of [0, 3]) {
      const [m, k, n] = [5, 7, 4];
      const aShape = ta ? [k, m] : [m, k];
      const bShape = tb ? [n, k] : [k, n];
      const inputs = [random(rng, batch ? [batch, ...aShape] : aShape), random(rng, batch ? [batch, ...bShape] : bShape)];
      const f = (a: tf.Tensor, b: tf.Tensor) => [tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb)];
      const want = await on('cpu', inputs, f);
      const got = await on('wasm', inputs, f);
      assertClose(got[0], want[0], `matMul(transposeA=${ta}, transposeB=${tb}, batch ${batch})`);
    }
  }
  // The gradient of a dense layer uses both transposed forms.
  const inputs = [random(rng, [6, 9]), random(rng, [9, 4])];
  const g = (x: tf.Tensor, w: tf.Tensor) => tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.square(tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D))))([x, w]);
  const want = await on('cpu', inputs, g);
  const got = await on('wasm', inputs, g);
  assertClose(got[0], want[0], 'dense dx');
  assertClose(got[1], want[1], 'dense dW');
});

test('Sign is exact for tiny magnitudes (the stock wasm kernel returns 0 below ~1e-6)', async () => {
  const values = [1e-3, 1e-6, 1e-7, 1e-8, 1e-20, -1e-8, -1e-30, -2, 0, NaN];
  const inputs = [{ data: Float32Array.from(values), shape: [values.length] }];
  const f = (x: tf.Tensor) => [tf.sign(x)];
  const want = await on('cpu', inputs, f);
  const got = await on('wasm', inputs, f);
  assert.deepEqual(Array.from(got[0]), [1, 1, 1, 1, 1, -1, -1, -1, 0, NaN]);
  // torch.sign(NaN) is NaN (kept); tfjs's cpu backend says 0, so compare the finite ones.
  assert.deepEqual(Array.from(got[0]).slice(0, -1), Array.from(want[0]).slice(0, -1));
  // A sign step moves every pixel with a non-zero gradient by exactly α.
  const step = await on('wasm', [{ data: Float32Array.from([3e-9, -4e-10, 0.5]), shape: [3] }], (g) => [tf.mul(tf.sign(g), 0.01)]);
  assert.deepEqual(Array.from(step[0]), [0.01, -0.01, 0.01].map(Math.fround));
});

test('Identity and same-dtype Cast share the buffer; the copy outlives the source; real casts convert (bool: x ≠ 0)', () => {
  const backend = tf.backend() as unknown as { refCount(dataId: object): number };
  const x = tf.tensor1d([1.5, -2.25, 3]);
  const y = tf.clone(x);
  const z = tf.cast(x, 'float32');
  assert.equal(y.dataId, x.dataId);
  assert.equal(z.dataId, x.dataId);
  assert.equal(backend.refCount(x.dataId), 3);
  x.dispose();
  z.dispose();
  assert.deepEqual(Array.from(y.dataSync()), [1.5, -2.25, 3]);
  assert.equal(backend.refCount(y.dataId), 1);
  const i = tf.cast(y, 'int32');
  assert.notEqual(i.dataId, y.dataId);
  assert.equal(i.dtype, 'int32');
  assert.deepEqual(Array.from(i.dataSync()), [1, -2, 3]);
  const src = tf.tensor1d([0, 2, -1, 0.5, NaN]);
  const b = tf.cast(src, 'bool');
  // The stock wasm kernel gave [0, 2, 255, 0, 0] for these.
  assert.deepEqual(Array.from(b.dataSync()), [0, 1, 1, 1, 1]);
  tf.dispose([y, i, src, b]);
});

test('a gradient through saved tensors is unchanged when their buffers are shared (no leak)', () => {
  const before = tf.memory().numTensors;
  const x = tf.tensor2d([[0.5, -1], [2, 3]]);
  const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.exp(a), tf.square(a))))(x);
  // d/da [e^a a²] = e^a (a² + 2a)
  const want = [0.5, -1, 2, 3].map((a) => Math.exp(a) * (a * a + 2 * a));
  Array.from(g.dataSync()).forEach((v, k) => assert.ok(Math.abs(v - want[k]) <= 1e-5 * (1 + Math.abs(want[k])), `${v} vs ${want[k]}`));
  tf.dispose([x, g]);
  assert.equal(tf.memory().numTensors, before);
});

test('Maximum, Minimum (NaN propagates, also broadcast), Select and Tile match cpu', async () => {
  const r = new Rng(77);
  const data = (n: number) => r.fillNormal(new Float32Array(n));
  const a = { data: data(6 * 5 * 4 * 3), shape: [6, 5, 4, 3] };
  const b = { data: data(6 * 5 * 4 * 3), shape: [6, 5, 4, 3] };
  a.data[7] = NaN;
  b.data[11] = NaN;
  const col = { data: data(6 * 5 * 4), shape: [6, 5, 4, 1] };
  const cases: Array<[string, { data: Float32Array; shape: number[] }[], (...xs: tf.Tensor[]) => tf.Tensor[]]> = [
    ['maximum/minimum (NaN propagates)', [a, b], (x, y) => [tf.maximum(x, y), tf.minimum(x, y)]],
    ['maximum/minimum broadcast', [a, col], (x, y) => [tf.maximum(x, y), tf.minimum(y, x)]],
    ['where, same-shape condition', [a, b], (x, y) => [tf.where(tf.greater(x, y), x, y)]],
    ['where, row mask [n,1,1,1] (Tile)', [a, b], (x, y) => [tf.where(tf.reshape(tf.greater(tf.slice(x, 0, [6, 1, 1, 1]), 0), [6, 1, 1, 1]), x, y)]],
    ['tile, every pattern', [col], (x) => [tf.tile(x, [1, 1, 1, 3]), tf.tile(x, [2, 1, 3, 2]), tf.tile(tf.reshape(x, [6, 20]), [3, 2]), tf.tile(tf.reshape(x, [120]), [4]), tf.tile(tf.slice(x, 0, [6, 1, 1, 1]), [1, 4, 1, 5])]],
    ['tile int32 and bool', [col], (x) => [tf.cast(tf.tile(tf.cast(tf.mul(x, 10), 'int32'), [2, 1, 2, 1]), 'float32'), tf.cast(tf.tile(tf.greater(x, 0), [1, 2, 1, 3]), 'float32')]],
  ];
  for (const [label, inputs, f] of cases) {
    const want = await on('cpu', inputs, f);
    const got = await on('wasm', inputs, f);
    want.forEach((w, k) => {
      assert.equal(got[k].length, w.length, `${label} #${k}: length`);
      for (let i = 0; i < w.length; i++) {
        if (Number.isNaN(w[i])) assert.ok(Number.isNaN(got[k][i]), `${label} #${k}[${i}]: NaN expected`);
        else assert.equal(got[k][i], w[i], `${label} #${k}[${i}]`);
      }
    });
  }
});
