// Native (oneDNN / OpenBLAS) kernels on the wasm backend against tfjs's pure-JS cpu backend.
// Without the addon (not built, no libdnnl) the kernel tests report why and pass; the pure
// geometry helpers are checked everywhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import {
  nativeKernelStats,
  registerNativeKernels,
  setNativeConvEngine,
  setNativeMatMulEngine,
  unregisterNativeKernels,
  CONV_ENGINES,
  MATMUL_ENGINES,
  type NativeKernelsResult,
} from '../../src/engine/native';
import { convDims } from '../../src/engine/native/conv';
import { planMatMul } from '../../src/engine/native/matmul';
import { planReduce } from '../../src/engine/native/reduce';
import { nativeBatchNormActive } from '../../src/engine/native/batchnorm';
import { batchNorm } from '../../src/models/layers';
import { Sgd } from '../../src/train/optimizer';

// A 64 KiB im2col budget makes the GEMM convolutions work through several chunks of images
// even on these small shapes (read by the addon at its first convolution).
process.env.IBRAR_NATIVE_PATCH_BUDGET ??= String(64 * 1024);

type Input = { shape: number[]; data: Float32Array };
type Fn = (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

let ready: Promise<NativeKernelsResult> | null = null;
function nativeReady(): Promise<NativeKernelsResult> {
  ready ??= (async () => {
    await initBackend('wasm');
    return registerNativeKernels();
  })();
  return ready;
}

/** Runs the test body only when the addon loaded; otherwise says why and passes. */
async function withNative(t: { diagnostic(msg: string): void }, body: () => Promise<void>): Promise<void> {
  const r = await nativeReady();
  if (!r.loaded) {
    t.diagnostic(`native kernels not available (${r.reason}); skipped`);
    return;
  }
  await body();
}

const rng = new Rng(20240611);
function input(shape: number[]): Input {
  // Normal data has negative entries everywhere, which ReLU epilogues must clamp.
  return { shape, data: rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1))) };
}

async function evaluate(backend: string, inputs: Input[], fn: Fn): Promise<Array<{ shape: number[]; data: Float32Array }>> {
  await tf.setBackend(backend);
  const xs = inputs.map((i) => tf.tensor(i.data, i.shape));
  const outs = tf.tidy(() => {
    const r = fn(...xs);
    return Array.isArray(r) ? r : [r];
  });
  const res = await Promise.all(outs.map(async (o) => ({ shape: o.shape, data: (await o.data()) as Float32Array })));
  tf.dispose([...xs, ...outs]);
  return res;
}

/**
 * fn on the wasm backend (native kernels) equals fn on the cpu backend to
 * |a − b| ≤ 1e-4·(1 + |b|), the listed kernels ran natively and none fell back.
 */
async function agree(what: string, inputs: Input[], fn: Fn, nativeKernels: string[], allowFallback = false): Promise<void> {
  const expected = await evaluate('cpu', inputs, fn);
  const before = nativeKernelStats();
  const tensorsBefore = tf.memory().numTensors;
  const actual = await evaluate('wasm', inputs, fn);
  assert.equal(tf.memory().numTensors, tensorsBefore, `${what}: tensors leaked`);
  const after = nativeKernelStats();
  assert.equal(actual.length, expected.length);
  actual.forEach((a, k) => {
    const e = expected[k];
    assert.deepEqual(a.shape, e.shape, `${what}: output ${k} shape`);
    for (let i = 0; i < e.data.length; i++) {
      const tol = 1e-4 * (1 + Math.abs(e.data[i]));
      if (!(Math.abs(a.data[i] - e.data[i]) <= tol)) {
        assert.fail(`${what}: output ${k}[${i}] = ${a.data[i]}, cpu backend gives ${e.data[i]}`);
      }
    }
  });
  for (const kernel of nativeKernels) {
    const ran = (after[kernel]?.native ?? 0) - (before[kernel]?.native ?? 0);
    assert.ok(ran > 0, `${what}: ${kernel} did not run natively (${JSON.stringify(after[kernel])})`);
    if (!allowFallback) {
      const fell = (after[kernel]?.fallback ?? 0) - (before[kernel]?.fallback ?? 0);
      assert.equal(fell, 0, `${what}: ${kernel} fell back (${after[kernel]?.lastError ?? 'unsupported arguments'})`);
    }
  }
}

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];
interface ConvCase {
  x: number[];
  w: number[];
  strides: number | [number, number];
  pad: Pad;
  dilations?: number | [number, number];
  rounding?: 'floor' | 'round' | 'ceil';
}

const CONV_CASES: ConvCase[] = [
  { x: [2, 7, 9, 3], w: [3, 2, 3, 4], strides: 1, pad: 'same' },
  { x: [3, 8, 6, 5], w: [3, 3, 5, 6], strides: 2, pad: 'same' },
  { x: [2, 9, 8, 4], w: [4, 4, 4, 3], strides: 2, pad: 'same' }, // even kernel: asymmetric 'same' pads
  { x: [1, 9, 7, 4], w: [2, 3, 4, 5], strides: [2, 1], pad: 'valid' },
  { x: [2, 10, 11, 3], w: [3, 3, 3, 8], strides: 2, pad: 'valid' },
  { x: [2, 6, 5, 3], w: [3, 3, 3, 2], strides: 1, pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { x: [1, 8, 8, 2], w: [3, 3, 2, 3], strides: 2, pad: 1, rounding: 'ceil' },
  { x: [1, 5, 5, 16], w: [1, 1, 16, 32], strides: 1, pad: 'valid' },
  { x: [4, 16, 16, 16], w: [3, 3, 16, 24], strides: 1, pad: 'same' },
];

test('convDims resolves tfjs padding into the near and far pads oneDNN expects', () => {
  const dims = (x: number[], w: number[], s: number, pad: Pad, rounding?: 'ceil') =>
    Array.from(convDims(tf.backend_util.computeConv2DInfo(x as never, w as never, s, 1, pad as never, rounding, false, 'channelsLast')));
  // 'same', stride 2, 4x4 kernel on 9 rows: out 5, total pad (5-1)*2+4-9 = 3 → top 1, bottom 2.
  assert.deepEqual(dims([1, 9, 9, 1], [4, 4, 1, 1], 2, 'same'), [1, 9, 9, 1, 5, 5, 1, 4, 4, 2, 2, 1, 1, 1, 1, 2, 2]);
  // Numeric pad 1 with 'ceil' rounding: out ceil((8-3+2)/2+1) = 5 needs a far pad of (5-1)*2+3-8-1 = 2.
  assert.deepEqual(dims([1, 8, 8, 1], [3, 3, 1, 1], 2, 1, 'ceil'), [1, 8, 8, 1, 5, 5, 1, 3, 3, 2, 2, 1, 1, 1, 1, 2, 2]);
  // 'valid' keeps zero pads even when the stride leaves input rows unused.
  assert.deepEqual(dims([1, 10, 10, 1], [3, 3, 1, 1], 2, 'valid'), [1, 10, 10, 1, 4, 4, 1, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0]);
});

test('planMatMul flattens batches only where one index per side suffices', () => {
  assert.deepEqual(planMatMul([3, 4, 5], [3, 5, 6], false, false), { batchA: 3, batchB: 3, m: 4, k: 5, n: 6, outShape: [3, 4, 6] });
  assert.deepEqual(planMatMul([1, 5, 4], [7, 6, 5], true, true), { batchA: 1, batchB: 7, m: 4, k: 5, n: 6, outShape: [7, 4, 6] });
  assert.deepEqual(planMatMul([2, 3, 4, 5], [5, 6], false, false), { batchA: 6, batchB: 1, m: 4, k: 5, n: 6, outShape: [2, 3, 4, 6] });
  assert.equal(planMatMul([2, 1, 4, 5], [1, 3, 5, 6], false, false), null); // needs a 2-D batch index
  assert.equal(planMatMul([1, 4, 5], [1, 6, 6], false, false), null); // inner sizes differ
});

/**
 * Runs body once per engine of a kind (the OpenBLAS ones only when the addon has them),
 * restoring 'auto' afterwards.
 */
async function forEachEngine<E extends string>(engines: readonly E[], set: (e: E) => void, body: (e: E) => Promise<void>): Promise<void> {
  const { openblas } = await nativeReady();
  try {
    for (const e of engines.filter((name) => openblas || !name.includes('openblas'))) {
      set(e);
      await body(e);
    }
  } finally {
    set(engines[0]);
  }
}

test('planReduce maps leading or trailing axis blocks onto a [rows, cols] sum', () => {
  assert.deepEqual(planReduce([4, 5, 6, 7], [0, 1, 2], false), { rows: 120, cols: 7, leading: true, count: 120, outShape: [7] });
  assert.deepEqual(planReduce([4, 5, 6, 7], [2, 0, 1], true), { rows: 120, cols: 7, leading: true, count: 120, outShape: [1, 1, 1, 7] });
  assert.deepEqual(planReduce([4, 5, 6, 7], [-1, -2], false), { rows: 20, cols: 42, leading: false, count: 42, outShape: [4, 5] });
  assert.equal(planReduce([4, 5, 6, 7], [1, 2], false), null); // a middle block
});

test('native Conv2D matches the cpu backend (strides, same/valid/explicit pads, ceil rounding, dilation)', async (t) => {
  await withNative(t, () =>
    forEachEngine(CONV_ENGINES, setNativeConvEngine, async (engine) => {
      for (const c of CONV_CASES) {
        await agree(`conv2d ${engine} ${JSON.stringify(c)}`, [input(c.x), input(c.w)], (x, w) =>
          tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, c.strides, c.pad, 'NHWC', c.dilations ?? 1, c.rounding), [tf.Conv2D]);
      }
      await agree(`conv2d ${engine} dilation 2`, [input([2, 9, 10, 3]), input([3, 2, 3, 4])], (x, w) =>
        tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2), [tf.Conv2D]);
    }),
  );
});

test('native Conv2DBackpropInput and Conv2DBackpropFilter give the cpu backend conv gradients', async (t) => {
  await withNative(t, () => forEachEngine(CONV_ENGINES, setNativeConvEngine, async (engine) => {
    // tfjs's Conv2D gradient drops dimRoundingMode, so rounded geometries have no gradient.
    for (const c of CONV_CASES.filter((k) => k.rounding === undefined)) {
      const x = input(c.x);
      const w = input(c.w);
      const outShape = tf.backend_util.computeConv2DInfo(c.x as never, c.w as never, c.strides, 1, c.pad as never).outShape;
      const r = input(outShape);
      await agree(`conv2d grads ${engine} ${JSON.stringify(c)}`, [x, w, r], (xt, wt, rt) => {
        // d/dx and d/dw of sum(conv(x, w) ⊙ r): dy = r reaches both backprop kernels.
        const f = (a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), rt));
        return tf.grads(f)([xt, wt]);
      }, [tf.Conv2DBackpropInput, tf.Conv2DBackpropFilter]);
    }
  }));
});

test('native FusedConv2D adds the bias and applies relu; other activations fall back', async (t) => {
  await withNative(t, async () => {
    const fused = (activation: 'relu' | 'linear' | 'elu', withBias: boolean, strides: number, pad: Pad) => (x: tf.Tensor, w: tf.Tensor, b: tf.Tensor) =>
      tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides, pad: pad as 'same', bias: withBias ? b : undefined, activation });
    await forEachEngine(CONV_ENGINES, setNativeConvEngine, async (engine) => {
      await agree(`fused conv ${engine} relu+bias`, [input([2, 8, 7, 3]), input([3, 3, 3, 5]), input([5])], fused('relu', true, 1, 'same'), [tf.FusedConv2D]);
      await agree(`fused conv ${engine} linear+bias`, [input([1, 9, 9, 4]), input([2, 3, 4, 6]), input([6])], fused('linear', true, 2, 'valid'), [tf.FusedConv2D]);
      await agree(`fused conv ${engine} relu, no bias`, [input([3, 6, 6, 2]), input([3, 3, 2, 4]), input([4])], fused('relu', false, 2, 'same'), [tf.FusedConv2D]);
      await agree(`fused conv ${engine} 1x1 relu+bias`, [input([2, 5, 4, 6]), input([1, 1, 6, 7]), input([7])], fused('relu', true, 1, 'valid'), [tf.FusedConv2D]);
    });
    const before = nativeKernelStats()[tf.FusedConv2D]?.fallback ?? 0;
    const elu = fused('elu', true, 1, 'same');
    const x = input([1, 5, 5, 2]);
    const w = input([3, 3, 2, 3]);
    const b = input([3]);
    const expected = await evaluate('cpu', [x, w, b], elu);
    const actual = await evaluate('wasm', [x, w, b], elu);
    assert.equal((nativeKernelStats()[tf.FusedConv2D]?.fallback ?? 0) - before, 1, 'elu must use the wasm kernel');
    expected[0].data.forEach((e, i) => assert.ok(Math.abs(actual[0].data[i] - e) <= 1e-4 * (1 + Math.abs(e))));
  });
});

test('native BatchMatMul matches the cpu backend (transposes, batch broadcast) on every engine', async (t) => {
  await withNative(t, async () => {
    const cases: Array<[number[], number[], boolean, boolean]> = [
      [[1, 7, 5], [1, 5, 3], false, false],
      [[4, 6, 9], [4, 9, 5], false, false],
      [[3, 9, 6], [3, 5, 9], true, true],
      [[2, 3, 8, 5], [5, 7], false, false], // rank-2 b broadcast over a's batches
      [[1, 16, 6], [5, 16, 11], true, false], // a broadcast over b's batches
      [[5, 12, 10], [1, 7, 10], false, true],
      [[33, 65], [65, 17], false, false],
      // Above 2^24 flops the addon multiplies on all threads (smaller ones run on one).
      [[1, 128, 512], [1, 512, 160], false, false],
      [[2, 300, 96], [1, 160, 300], true, true],
    ];
    await forEachEngine(MATMUL_ENGINES, setNativeMatMulEngine, async (engine) => {
      for (const [as, bs, ta, tb] of cases) {
        await agree(`matMul ${engine} ${as}x${bs} tA=${ta} tB=${tb}`, [input(as), input(bs)], (a, b) => tf.matMul(a, b, ta, tb), [tf.BatchMatMul]);
      }
      await agree(`matMul grads ${engine}`, [input([6, 20]), input([20, 9]), input([6, 9])], (a, b, r) =>
        tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(tf.matMul(x, y), r)))([a, b]), [tf.BatchMatMul]);
    });
  });
});

test('native _FusedMatMul adds the bias and applies relu; other activations fall back', async (t) => {
  await withNative(t, async () => {
    const fused = (activation: 'relu' | 'linear' | 'leakyrelu', ta: boolean, tb: boolean) => (a: tf.Tensor, b: tf.Tensor, bias: tf.Tensor) =>
      tf.fused.matMul({ a, b, bias, transposeA: ta, transposeB: tb, activation, leakyreluAlpha: 0.3 });
    await forEachEngine(MATMUL_ENGINES, setNativeMatMulEngine, async (engine) => {
      await agree(`fused matMul relu ${engine}`, [input([10, 24]), input([24, 13]), input([13])], fused('relu', false, false), [tf._FusedMatMul]);
      await agree(`fused matMul linear tA tB ${engine}`, [input([24, 10]), input([13, 24]), input([13])], fused('linear', true, true), [tf._FusedMatMul]);
      await agree(`fused matMul relu batched ${engine}`, [input([3, 5, 8]), input([3, 8, 4]), input([4])], fused('relu', false, false), [tf._FusedMatMul]);
    });
    await agree('fused matMul leakyrelu (wasm kernel)', [input([6, 8]), input([8, 5]), input([5])], fused('leakyrelu', false, false), [], true);
  });
});

test('native MaxPoolGrad matches the cpu backend, ties and all-negative windows included', async (t) => {
  await withNative(t, async () => {
    type PoolCase = { x: number[]; k: number | [number, number]; s: number | [number, number]; pad: 'same' | 'valid' | number; ties?: boolean };
    const cases: PoolCase[] = [
      { x: [2, 8, 8, 3], k: 2, s: 2, pad: 'valid' },
      { x: [1, 7, 9, 4], k: 3, s: 2, pad: 'same' },
      { x: [2, 5, 6, 3], k: [3, 2], s: 1, pad: 'same' },
      { x: [3, 6, 6, 5], k: 2, s: 2, pad: 'valid', ties: true },
      // Numeric pads only with equal strides: tfjs sizes such outputs with the row stride for
      // both axes, and the stock wasm MaxPool then writes past its output.
      { x: [2, 7, 7, 2], k: 3, s: 2, pad: 1, ties: true },
    ];
    for (const c of cases) {
      const x = input(c.x);
      // Few distinct (mostly negative) values make ties and all-negative windows common.
      if (c.ties) x.data.forEach((v, i) => (x.data[i] = Math.round(v) - 1));
      const outShape = tf.backend_util.computePool2DInfo(c.x as never, c.k, c.s, 1, c.pad).outShape;
      const r = input(outShape);
      await agree(`maxPool ${JSON.stringify(c)}`, [x, r], (xt, rt) => {
        const f = (a: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(a as tf.Tensor4D, c.k, c.s, c.pad), rt));
        return [tf.maxPool(xt as tf.Tensor4D, c.k, c.s, c.pad), tf.grad(f)(xt)];
      }, [tf.MaxPoolGrad]);
    }
  });
});

test('native Sum and Mean match the cpu backend, and batch-norm training gradients with them', async (t) => {
  await withNative(t, async () => {
    const x = input([8, 9, 10, 16]);
    const cases: Array<[string, number | number[] | undefined, boolean]> = [
      ['leading axes', [0, 1, 2], false],
      ['leading axes keepDims', [0, 1, 2], true],
      ['trailing axis', -1, false],
      ['trailing axes keepDims', [2, 3], true],
      ['all axes', undefined, false],
    ];
    for (const [what, axis, keepDims] of cases) {
      await agree(`sum/mean ${what}`, [x], (xt) => [tf.sum(xt, axis, keepDims), tf.mean(xt, axis, keepDims)], [tf.Sum, tf.Mean]);
    }
    // A full reduction big enough for the blocked, threaded path (odd length: a ragged tail).
    await agree('sum/mean all axes, 100003 values', [input([100003])], (xt) => [tf.sum(xt), tf.mean(xt)], [tf.Sum, tf.Mean]);
    // Batch norm as models use it: statistics over N, H, W, then scale and shift; the
    // gradients reduce dy over the same axes (Sum).
    await agree('batch-norm grads', [input([6, 8, 9, 12]), input([12]), input([12]), input([6, 8, 9, 12])], (xt, g, b, r) => {
      const f = (a: tf.Tensor, scale: tf.Tensor, offset: tf.Tensor) => {
        const { mean, variance } = tf.moments(a, [0, 1, 2]);
        return tf.sum(tf.mul(tf.batchNorm(a, mean, variance, offset, scale, 1e-5), r));
      };
      return tf.grads(f)([xt, g, b]);
    }, [tf.Sum, tf.Mean]);
  });
});

test('unregisterNativeKernels restores the kernels it replaced', async (t) => {
  await withNative(t, async () => {
    const nativeConv = tf.getKernel(tf.Conv2D, 'wasm').kernelFunc;
    unregisterNativeKernels();
    const restored = tf.getKernel(tf.Conv2D, 'wasm').kernelFunc;
    assert.notEqual(restored, nativeConv);
    // Kernels tfjs lacks are removed, so models/layers.ts goes back to plain ops.
    assert.equal(tf.getKernel('IbrarBatchNorm', 'wasm'), undefined);
    assert.equal(nativeBatchNormActive(), false);
    const again = registerNativeKernels();
    assert.equal(again.loaded, true);
    assert.deepEqual(again.kernels.slice().sort(), [
      tf.BatchMatMul, tf.Conv2D, tf.Conv2DBackpropFilter, tf.Conv2DBackpropInput, tf.FusedConv2D, tf._FusedMatMul,
      tf.MaxPoolGrad, tf.Sum, tf.Mean, tf.Add, tf.Maximum, tf.Minimum, 'IbrarSgdStep', 'IbrarBatchNorm', 'IbrarBatchNormGrad',
    ].sort());
    assert.notEqual(tf.getKernel(tf.Conv2D, 'wasm').kernelFunc, restored);
  });
});

// Batch norm (+ fused ReLU): the native kernels on wasm against layers.ts's plain-op path on
// the cpu backend — outputs, batch statistics, and the gradients with respect to x, γ and β
// of a weighted sum (so every output element carries a different upstream gradient).
const BN_CASES: Array<{ shape: number[]; training: boolean; relu: boolean; offset: number }> = [
  { shape: [4, 5, 6, 8], training: true, relu: true, offset: 0 },
  { shape: [4, 5, 6, 8], training: true, relu: false, offset: 0 },
  { shape: [3, 7, 5, 16], training: false, relu: true, offset: 0 },
  { shape: [3, 7, 5, 16], training: false, relu: false, offset: 0 },
  { shape: [64, 40], training: true, relu: true, offset: 0 }, // BatchNorm1d after a linear layer
  { shape: [2, 16, 16, 24], training: true, relu: true, offset: 5 }, // |mean| ≫ std: no cancellation
  { shape: [2, 3, 3, 3], training: true, relu: false, offset: -2 }, // below the parallel threshold
];

for (const c of BN_CASES) {
  test(`native batch norm matches plain ops: [${c.shape}] ${c.training ? 'training' : 'eval'}${c.relu ? ' + relu' : ''}${c.offset ? ` offset ${c.offset}` : ''}`, async (t) => {
    await withNative(t, async () => {
      const ch = c.shape[c.shape.length - 1];
      const x = input(c.shape);
      x.data.forEach((v, i) => (x.data[i] = v * 0.5 + c.offset));
      const gamma = input([ch]);
      const beta = input([ch]);
      const runMean = input([ch]);
      const runVar = { shape: [ch], data: Float32Array.from(input([ch]).data, (v) => 0.5 + Math.abs(v)) };
      const weights = input(c.shape);
      await agree(
        'batchNorm',
        [x, gamma, beta, runMean, runVar, weights],
        (xt, g, b, m, v, w) => {
          const opts = { eps: 1e-5, training: c.training, relu: c.relu };
          const out = batchNorm(xt, g, b, m, v, opts);
          const grads = tf.grads((xa: tf.Tensor, ga: tf.Tensor, ba: tf.Tensor) => tf.sum(tf.mul(batchNorm(xa, ga, ba, m, v, opts).y, w)));
          return [out.y, out.mean, out.variance, ...grads([xt, g, b])];
        },
        ['IbrarBatchNorm', 'IbrarBatchNormGrad'],
      );
    });
  });
}

test('native batch norm in eval computes only the input gradient an attack asks for', async (t) => {
  await withNative(t, async () => {
    const x = tf.tensor(input([2, 4, 4, 8]).data, [2, 4, 4, 8]);
    const g = tf.ones([8]);
    const b = tf.zeros([8]);
    const m = tf.zeros([8]);
    const v = tf.ones([8]);
    const before = nativeKernelStats().IbrarBatchNormGrad?.native ?? 0;
    const dx = tf.grad((xa: tf.Tensor) => tf.sum(batchNorm(xa, g, b, m, v, { eps: 1e-5, training: false, relu: true }).y))(x);
    // One kernel call (dx only), and dx is the ReLU mask scaled by γ/√(1 + ε).
    assert.equal((nativeKernelStats().IbrarBatchNormGrad?.native ?? 0) - before, 1);
    const xs = x.dataSync();
    const dxs = dx.dataSync();
    for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(dxs[i] - (xs[i] > 0 ? 1 / Math.sqrt(1 + 1e-5) : 0)) < 1e-6);
    tf.dispose([x, g, b, m, v, dx]);
  });
});

test('native bias Add matches cpu for a per-channel vector on either side; other broadcasts fall back', async (t) => {
  await withNative(t, async () => {
    const x = input([4, 9, 10, 48]);
    const bias = input([48]);
    const bias4 = { shape: [1, 1, 1, 48], data: bias.data };
    await agree('x + bias', [x, bias], (a, b) => [tf.add(a, b), tf.add(b, a)], [tf.Add]);
    await agree('x + bias [1,1,1,C]', [x, bias4], (a, b) => [tf.add(a, b)], [tf.Add]);
    await agree('linear + bias', [input([512, 40]), input([40])], (a, b) => [tf.add(a, b)], [tf.Add]);
    // Same-shape and row broadcasts are the wasm kernel's (fallbacks allowed, values still checked).
    await agree('x + y', [x, input([4, 9, 10, 48])], (a, b) => [tf.add(a, b)], [], true);
    await agree('x + column', [x, input([4, 9, 10, 1])], (a, b) => [tf.add(a, b)], [], true);
  });
});

test('native Maximum / Minimum match cpu, NaN from either side propagating', async (t) => {
  await withNative(t, async () => {
    const a = input([8, 32, 32, 3]);
    const b = input([8, 32, 32, 3]);
    a.data[5] = NaN;
    b.data[9] = NaN;
    const expected = await evaluate('cpu', [a, b], (x, y) => [tf.maximum(x, y), tf.minimum(x, y)]);
    assert.ok(Number.isNaN(expected[0].data[5]) && Number.isNaN(expected[1].data[9]));
    const got = await evaluate('wasm', [a, b], (x, y) => [tf.maximum(x, y), tf.minimum(x, y)]);
    got.forEach((g, k) => g.data.forEach((v, i) => assert.ok(Object.is(v, expected[k].data[i]) || v === expected[k].data[i], `${k}[${i}]: ${v} vs ${expected[k].data[i]}`)));
    // The projection as attacks use it, through the same kernels (finite inputs: the stock wasm
    // clipByValue maps NaN to 0 where the cpu backend keeps it).
    await agree('L∞ projection', [input([8, 32, 32, 3]), input([8, 32, 32, 3])], (x, y) => [tf.clipByValue(tf.minimum(tf.maximum(x, tf.sub(y, 0.1)), tf.add(y, 0.1)), 0, 1)], [tf.Maximum, tf.Minimum]);
  });
});

test('native SGD step is bit-identical to the tfjs ops (momentum, weight decay, first and later steps)', async (t) => {
  await withNative(t, async () => {
    await tf.setBackend('wasm');
    const shapes = [[3, 3, 16, 32], [512], [300, 7]];
    const run = async (opts: { lr: number; momentum: number; weightDecay: number }): Promise<Float32Array[]> => {
      const r = new Rng(5);
      const params = shapes.map((s, i) => ({
        name: `p${i}`,
        trainable: true,
        variable: tf.variable(tf.tensor(r.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1))), s), true, `sgd-test-${i}-${Math.random()}`),
      }));
      const sgd = new Sgd(params as never, opts);
      for (let step = 0; step < 3; step++) {
        const grads: tf.NamedTensorMap = {};
        for (const p of params) grads[p.variable.name] = tf.tensor(r.fillNormal(new Float32Array(p.variable.size)), p.variable.shape);
        sgd.step(grads);
        tf.dispose(Object.values(grads));
      }
      const out = [...params.map((p) => p.variable.dataSync() as Float32Array), ...(await sgd.exportState()).map((s) => s.data)];
      params.forEach((p) => p.variable.dispose());
      sgd.dispose();
      return out;
    };
    for (const opts of [{ lr: 0.05, momentum: 0.9, weightDecay: 5e-4 }, { lr: 0.1, momentum: 0, weightDecay: 0 }, { lr: 0.01, momentum: 0.9, weightDecay: 0 }]) {
      const before = nativeKernelStats().IbrarSgdStep?.native ?? 0;
      const native = await run(opts);
      assert.ok((nativeKernelStats().IbrarSgdStep?.native ?? 0) > before, 'the native kernel ran');
      // PyTorch's rule by hand for element 0 of the first parameter (same draws as in run()).
      const r = new Rng(5);
      const p0 = shapes.map((sh) => r.fillNormal(new Float32Array(sh.reduce((a, b) => a * b, 1))))[0][0];
      const g0 = [0, 1, 2].map(() => shapes.map((sh) => r.fillNormal(new Float32Array(sh.reduce((a, b) => a * b, 1))))[0][0]);
      let p = p0;
      let b = 0;
      g0.forEach((g, step) => {
        const d = g + opts.weightDecay * p;
        b = opts.momentum > 0 ? (step === 0 ? d : opts.momentum * b + d) : d;
        p -= opts.lr * b;
      });
      assert.ok(Math.abs(native[0][0] - p) <= 1e-5 * (1 + Math.abs(p)), `${JSON.stringify(opts)}: p[0] ${native[0][0]}, by hand ${p}`);
      unregisterNativeKernels();
      try {
        const plain = await run(opts);
        assert.equal(native.length, plain.length);
        native.forEach((a, k) => assert.deepEqual(a, plain[k], `${JSON.stringify(opts)}: tensor ${k}`));
      } finally {
        registerNativeKernels();
      }
    }
  });
});
