// The tfjs WebGPU backend through Dawn (`webgpu` package) against the cpu backend: conv2d
// forward, its input and weight gradients, matMul (plain and transposed), addN past the
// storage-buffer limit, and a small-cnn forward + parameter gradients; plus the loader's two
// guards (sync reads explain themselves, validation errors fail reads). Runs on whatever
// adapter Dawn finds (in CI: Mesa llvmpipe through OpenGL ES); skips with a diagnostic when the
// optional packages or an adapter are absent, unless IBRAR_TEST_REQUIRE_WEBGPU=1 (CI) makes
// that a failure.
// Tolerance: max|webgpu − cpu| ≤ 2e-4 · max|cpu| per output tensor (float32 on both sides;
// the GPU sums in a different order). Training and evaluation on webgpu: webgpu-train.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend, type BackendInfo } from '../../src/engine/backend';
import { webgpuPlanFromEnv } from '../../src/engine/webgpu';
import { Rng } from '../../src/engine/rng';
import { buildSmallCnn } from '../../src/models/small-cnn';
import { webgpuPackagesMissing } from '../helpers/webgpu';

const REL_TOL = 2e-4;

interface Input {
  data: Float32Array;
  shape: number[];
}

function normal(rng: Rng, shape: number[], std = 1): Input {
  const n = shape.reduce((a, b) => a * b, 1);
  return { data: rng.fillNormal(new Float32Array(n), 0, std), shape };
}

/** Runs `f` on `backend` and reads every output back asynchronously (dataSync would throw on webgpu). */
async function on(backend: 'cpu' | 'webgpu', inputs: Input[], f: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(() => f(...inputs.map((i) => tf.tensor(i.data, i.shape))));
  const values = await Promise.all(outs.map((t) => t.data() as Promise<Float32Array>));
  tf.dispose(outs);
  return values;
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  let err = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    err = Math.max(err, Math.abs(actual[i] - expected[i]));
  }
  assert.ok(scale > 0, `${what}: reference is all zeros, the comparison would prove nothing`);
  assert.ok(err <= REL_TOL * scale, `${what}: max |webgpu − cpu| = ${err.toExponential(3)} > ${REL_TOL} × ${scale.toFixed(3)}`);
}

// Cases shared by the cpu reference and the webgpu run.
const rng = new Rng(20240611);
const convX = normal(rng, [2, 9, 9, 6], 4);
const convW = normal(rng, [3, 3, 6, 5], 3);
const convDy = normal(rng, [2, 5, 5, 5]); // output of the stride-2 'same' conv on 9×9
const matA = normal(rng, [33, 47], 3);
const matB = normal(rng, [47, 29], 3);
const cases: Array<{ name: string; inputs: Input[]; f: (...xs: tf.Tensor[]) => tf.Tensor[] }> = [
  {
    name: 'conv2d forward (stride 1 same, stride 2 valid)',
    inputs: [convX, convW],
    f: (x, w) => [
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'),
      tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'),
    ],
  },
  {
    name: 'conv2d input and weight gradients (stride 2 same)',
    inputs: [convX, convW, convDy],
    f: (x, w, dy) => {
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 'same'), dy)));
      return g([x, w]);
    },
  },
  {
    name: 'matMul plain and transposed',
    inputs: [matA, matB],
    f: (a, b) => [
      tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
      tf.matMul(tf.transpose(a) as tf.Tensor2D, b as tf.Tensor2D, true, false),
      tf.matMul(a as tf.Tensor2D, tf.transpose(b) as tf.Tensor2D, false, true),
    ],
  },
  {
    // tfjs's own webgpu AddN returns stale memory beyond 7 inputs; ibrar splits it.
    name: 'addN of 2, 7, 8 and 13 tensors (storage-buffer limit)',
    inputs: Array.from({ length: 13 }, () => normal(rng, [17, 3])),
    f: (...xs) => [2, 7, 8, 13].map((n) => tf.addN(xs.slice(0, n))),
  },
];

// small-cnn width 0.25 on 8×8×3: logits (training-mode BN) and the gradient of the mean
// cross-entropy with respect to every trainable parameter.
const cnnX = { data: new Rng(5).fillUniform(new Float32Array(4 * 8 * 8 * 3), 0, 1), shape: [4, 8, 8, 3] };
const cnnLabels = [3, 0, 7, 3];

async function smallCnnOn(backend: 'cpu' | 'webgpu'): Promise<{ names: string[]; values: Float32Array[]; leaked: number }> {
  await tf.setBackend(backend);
  const model = buildSmallCnn({ numClasses: 10, inputShape: [8, 8, 3], width: 0.25, depth: 28, widen: 10, dropout: 0, normalize: null }, new Rng(11));
  const trainable = model.params.filter((p) => p.trainable);
  const step = (): tf.Tensor[] =>
    tf.tidy(() => {
      const x = tf.tensor4d(cnnX.data, cnnX.shape as [number, number, number, number]);
      const yOh = tf.oneHot(tf.tensor1d(cnnLabels, 'int32'), 10);
      let logits: tf.Tensor | null = null;
      const { grads } = tf.variableGrads(() => {
        const out = model.forward(x, { training: true });
        logits = tf.keep(out.logits);
        return tf.neg(tf.mean(tf.sum(tf.mul(yOh, tf.logSoftmax(out.logits)), 1))) as tf.Scalar;
      }, trainable.map((p) => p.variable));
      return [logits!, ...trainable.map((p) => grads[p.variable.name])];
    });
  try {
    const first = step();
    const values = await Promise.all(first.map((t) => t.data() as Promise<Float32Array>));
    tf.dispose(first);
    const before = tf.memory().numTensors;
    tf.dispose(step());
    return { names: ['logits', ...trainable.map((p) => `d ${p.name}`)], values, leaked: tf.memory().numTensors - before };
  } finally {
    model.dispose();
  }
}

test('webgpu backend matches the cpu backend', { timeout: 60_000 }, async (t) => {
  const required = process.env.IBRAR_TEST_REQUIRE_WEBGPU === '1';
  const missing = webgpuPackagesMissing();
  if (missing) {
    assert.ok(!required, `IBRAR_TEST_REQUIRE_WEBGPU=1 but ${missing}`);
    t.diagnostic(`skipped: ${missing}`);
    return;
  }

  await initBackend('cpu');
  const expected: Float32Array[][] = [];
  for (const c of cases) expected.push(await on('cpu', c.inputs, c.f));
  const cnnExpected = await smallCnnOn('cpu');

  let info: BackendInfo;
  try {
    info = await initBackend('webgpu');
  } catch (err) {
    const msg = (err as Error).message;
    assert.ok(!required, `IBRAR_TEST_REQUIRE_WEBGPU=1 but ${msg}`);
    t.diagnostic(`skipped: ${msg}`);
    return;
  }
  t.diagnostic(`${info.provider} (plan: ${JSON.stringify(webgpuPlanFromEnv().attempts)})`);
  assert.equal(info.active, 'webgpu');
  assert.deepEqual(info.patchedKernels, ['AddN']);
  // tfjs runs small CPU-resident ops on the CPU; force every op in this test onto the GPU.
  tf.env().set('WEBGPU_CPU_FORWARD', false);

  for (const [i, c] of cases.entries()) {
    await t.test(c.name, async () => {
      const got = await on('webgpu', c.inputs, c.f);
      assert.equal(got.length, expected[i].length);
      got.forEach((g, k) => assertClose(g, expected[i][k], `${c.name} #${k}`));
    });
  }

  await t.test('small-cnn width 0.25, 8×8: logits and every parameter gradient', async () => {
    const got = await smallCnnOn('webgpu');
    assert.deepEqual(got.names, cnnExpected.names);
    assert.ok(got.names.length > 10, 'expected logits plus at least ten parameter gradients');
    got.values.forEach((v, k) => assertClose(v, cnnExpected.values[k], got.names[k]));
    assert.equal(got.leaked, 0, 'a second forward+gradient step left tensors behind');
    assert.equal(cnnExpected.leaked, 0, 'the cpu run left tensors behind');
  });

  await t.test('dataSync of a GPU-resident tensor throws in Node; await data() reads it', async () => {
    await tf.setBackend('webgpu');
    const p = tf.tidy(() => tf.matMul(tf.tensor2d(matA.data, matA.shape as [number, number]), tf.tensor2d(matB.data, matB.shape as [number, number])));
    try {
      // tfjs reads back synchronously through an OffscreenCanvas, which Node does not have.
      assert.throws(() => p.dataSync(), (err: Error) => err.name === 'WebGpuSyncReadError' && /await tensor\.data\(\)/.test(err.message));
      assertClose((await p.data()) as Float32Array, expected[2][0], 'matMul via data()');
    } finally {
      p.dispose();
    }
  });

  // Last: a validation error poisons the backend for the rest of the process, by design.
  await t.test('a WebGPU validation error makes the next read throw instead of returning stale data', async () => {
    await tf.setBackend('webgpu');
    const device = (tf.backend() as unknown as { device: { createBuffer(d: { size: number; usage: number }): unknown } }).device;
    device.createBuffer({ size: 4, usage: 0 }); // invalid: a buffer needs some usage
    const q = tf.tidy(() => tf.square(tf.fill([2000], 3)));
    try {
      await assert.rejects(q.data(), (err: Error) => err.name === 'WebGpuValidationError' && /usage/i.test(err.message));
    } finally {
      q.dispose();
    }
  });
});

test('IBRAR_WEBGPU_* variables choose the Dawn attempts', () => {
  // Unset: Dawn's default backend first, then OpenGL ES at the compatibility feature level.
  assert.deepEqual(webgpuPlanFromEnv({}), {
    attempts: [
      { dawn: [], featureLevel: 'core' },
      { dawn: ['backend=opengles'], featureLevel: 'compatibility' },
    ],
    powerPreference: 'high-performance',
  });
  assert.deepEqual(webgpuPlanFromEnv({ IBRAR_WEBGPU_DAWN: 'backend=vulkan' }).attempts, [{ dawn: ['backend=vulkan'], featureLevel: 'core' }]);
  // OpenGL backends default to compatibility; an explicit level and extra toggles pass through.
  assert.deepEqual(webgpuPlanFromEnv({ IBRAR_WEBGPU_DAWN: ' backend=opengles , enable-dawn-features=allow_unsafe_apis' }).attempts, [
    { dawn: ['backend=opengles', 'enable-dawn-features=allow_unsafe_apis'], featureLevel: 'compatibility' },
  ]);
  assert.deepEqual(webgpuPlanFromEnv({ IBRAR_WEBGPU_DAWN: 'backend=opengl', IBRAR_WEBGPU_FEATURE_LEVEL: 'core', IBRAR_WEBGPU_POWER: 'low-power' }), {
    attempts: [{ dawn: ['backend=opengl'], featureLevel: 'core' }],
    powerPreference: 'low-power',
  });
  assert.throws(() => webgpuPlanFromEnv({ IBRAR_WEBGPU_FEATURE_LEVEL: 'compat' }), /'core' or 'compatibility', found 'compat'/);
  assert.throws(() => webgpuPlanFromEnv({ IBRAR_WEBGPU_POWER: 'fast' }), /IBRAR_WEBGPU_POWER/);
});
