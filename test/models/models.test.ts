// Shapes, tap names, parameter counts, initialisation, the channel-mask hook, dropout,
// input normalisation, the registry and memory behaviour of every architecture.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { UserError } from '../../src/errors';
import type { Model, ModelOptions } from '../../src/models/types';
import type { ModelConfig } from '../../src/config/schema';
import { ARCHS } from '../../src/config/schema';
import { buildModel, listArchs } from '../../src/models/registry';
import { buildVgg16 } from '../../src/models/vgg16';
import { buildResnet18 } from '../../src/models/resnet18';
import { buildWrn, wrnTapNames } from '../../src/models/wrn';
import { buildSmallCnn } from '../../src/models/small-cnn';
import { countTrainable } from '../../src/models/params';
import { formulaInput, options } from './helpers';

type Builder = (opts: ModelOptions, rng: Rng) => Model;

/** Tap shapes (without batch) after one eval forward of a batch of 2. */
function tapShapes(model: Model): Record<string, number[]> {
  const [h, w, c] = model.inputShape;
  return tf.tidy(() => {
    const x = tf.fill([2, h, w, c], 0.5) as tf.Tensor4D;
    const { logits, taps } = model.forward(x, { training: false });
    assert.deepEqual(logits.shape, [2, model.numClasses]);
    assert.deepEqual(Object.keys(taps), [...model.tapNames]);
    return Object.fromEntries(
      Object.entries(taps).map(([name, t]) => {
        assert.equal(t.shape[0], 2);
        return [name, t.shape.slice(1)];
      }),
    );
  });
}

function withModel<T>(builder: Builder, opts: ModelOptions, seed: number, fn: (m: Model) => T): T {
  const model = builder(opts, new Rng(seed));
  try {
    return fn(model);
  } finally {
    model.dispose();
  }
}

test('vgg16 width 0.25: taps, shapes, mask tap (32×32×3 and 28×28×1 with skipped pools)', async () => {
  await initBackend('wasm');
  withModel(buildVgg16, options({ numClasses: 10, inputShape: [32, 32, 3], width: 0.25 }), 0, (m) => {
    assert.equal(m.maskTap, 'block5');
    assert.deepEqual(tapShapes(m), {
      block1: [16, 16, 16],
      block2: [8, 8, 32],
      block3: [4, 4, 64],
      block4: [2, 2, 128],
      block5: [1, 1, 128],
      fc1: [1024],
      fc2: [1024],
    });
  });
  // 28 → 14 → 7 → 3 → 1, and block5's pool is skipped (a 1×1 map has no 2×2 window).
  withModel(buildVgg16, options({ numClasses: 10, inputShape: [28, 28, 1], width: 0.25 }), 0, (m) => {
    const s = tapShapes(m);
    assert.deepEqual([s.block1, s.block2, s.block3, s.block4, s.block5], [[14, 14, 16], [7, 7, 32], [3, 3, 64], [1, 1, 128], [1, 1, 128]]);
  });
});

test('resnet18 width 0.25: 10 taps (conv1, 8 blocks, pool), strides 1,2,2,2', async () => {
  await initBackend('wasm');
  withModel(buildResnet18, options({ numClasses: 10, inputShape: [32, 32, 3], width: 0.25 }), 0, (m) => {
    assert.equal(m.maskTap, 'pool');
    assert.deepEqual(tapShapes(m), {
      conv1: [32, 32, 16],
      'layer1.0': [32, 32, 16],
      'layer1.1': [32, 32, 16],
      'layer2.0': [16, 16, 32],
      'layer2.1': [16, 16, 32],
      'layer3.0': [8, 8, 64],
      'layer3.1': [8, 8, 64],
      'layer4.0': [4, 4, 128],
      'layer4.1': [4, 4, 128],
      pool: [128],
    });
  });
});

test('wrn depth 10 widen 1: taps and the group-2 mask tap; WRN-28-10 has 14 taps', async () => {
  await initBackend('wasm');
  withModel(buildWrn, options({ numClasses: 10, inputShape: [32, 32, 3], depth: 10, widen: 1 }), 0, (m) => {
    assert.equal(m.maskTap, 'layer2.0');
    assert.deepEqual(tapShapes(m), {
      conv1: [32, 32, 16],
      'layer1.0': [32, 32, 16],
      'layer2.0': [16, 16, 32],
      'layer3.0': [8, 8, 64],
      pool: [64],
    });
  });
  const names28 = wrnTapNames(28);
  assert.equal(names28.length, 14); // method.md §0: conv1 + 12 block outputs + pooled vector
  assert.deepEqual(names28.slice(0, 3), ['conv1', 'layer1.0', 'layer1.1']);
  assert.equal(names28[13], 'pool');
  withModel(buildWrn, options({ numClasses: 10, inputShape: [8, 8, 3], depth: 16, widen: 2 }), 0, (m) => {
    assert.equal(m.maskTap, 'layer2.1');
  });
});

test('small-cnn: 28×28×1 and 32×32×3', async () => {
  await initBackend('wasm');
  withModel(buildSmallCnn, options({ numClasses: 10, inputShape: [28, 28, 1] }), 0, (m) => {
    assert.equal(m.maskTap, 'conv3');
    assert.deepEqual(tapShapes(m), { conv1: [14, 14, 32], conv2: [7, 7, 64], conv3: [128], fc1: [128] });
  });
  withModel(buildSmallCnn, options({ numClasses: 4, inputShape: [32, 32, 3], width: 0.5 }), 0, (m) => {
    assert.deepEqual(tapShapes(m), { conv1: [16, 16, 16], conv2: [8, 8, 32], conv3: [64], fc1: [64] });
  });
});

test('full-width parameter counts equal PyTorch', async () => {
  await initBackend('cpu');
  const count = (b: Builder, o: Partial<ModelOptions>): number =>
    withModel(b, options({ numClasses: 10, inputShape: [32, 32, 3], ...o }), 0, (m) => countTrainable(m.params));
  // VGG16 (IB-RAR: conv weight + bias + BN γ,β = 9·in·out + 3·out per conv):
  //   1,920 + 37,056 | 74,112 + 147,840 | 295,680 + 2·590,592 | 1,181,184 + 2·2,360,832
  //   | 3·2,360,832 = 14,723,136 over the 13 convs;
  //   fc1 512·4096+4096 = 2,101,248, BN1d 8,192; fc2 4096·4096+4096 = 16,781,312, BN1d 8,192;
  //   classifier 4096·10+10 = 40,970 → 33,663,050.
  assert.equal(count(buildVgg16, {}), 33_663_050);
  // ResNet18 (CIFAR, bias-free convs): stem 1,728 + BN 128; stage1 4·36,864 + 4·128;
  // stage2 73,728 + 3·147,456 + 1×1 8,192 + 5·256; stage3 294,912 + 3·589,824 + 32,768 + 5·512;
  // stage4 1,179,648 + 3·2,359,296 + 131,072 + 5·1,024; linear 5,130 → 11,173,962.
  assert.equal(count(buildResnet18, {}), 11_173_962);
  // WRN-28-10 of the IB-RAR code (conv biases): the bias-free standard WRN has 36,479,194;
  // + 16 (stem) + Σ biases of 24 3×3 convs (4·2·160 + 4·2·320 + 4·2·640 = 8,960)
  // + 3 shortcut biases (160 + 320 + 640 = 1,120) = 36,489,290.
  assert.equal(count(buildWrn, { depth: 28, widen: 10 }), 36_489_290);
});

test('init: PyTorch default U(−1/√fan_in, 1/√fan_in), BN 1/0/0/1, deterministic per seed', async () => {
  await initBackend('wasm');
  const opts = options({ numClasses: 10, inputShape: [32, 32, 3], width: 0.25 });
  const rng = new Rng(7);
  const before = rng.getState();
  const a = buildVgg16(opts, rng);
  assert.deepEqual(rng.getState(), before, 'building does not advance the rng');
  const b = buildVgg16(opts, new Rng(7));
  const c = buildVgg16(opts, new Rng(8));
  try {
    const get = (m: Model, name: string): Float32Array => {
      const p = m.params.find((q) => q.name === name);
      assert.ok(p, name);
      return p.variable.dataSync() as Float32Array;
    };
    const checkUniform = (name: string, fanIn: number): void => {
      const v = get(a, name);
      const bound = 1 / Math.sqrt(fanIn);
      let max = 0;
      let sum = 0;
      let sq = 0;
      for (const x of v) {
        max = Math.max(max, Math.abs(x));
        sum += x;
        sq += x * x;
      }
      const mean = sum / v.length;
      const std = Math.sqrt(sq / v.length - mean * mean);
      // Sampling slack for n uniform values: the max falls short of b by ~b/n; the sample std
      // has relative spread ≈ 0.45/√n (uniform kurtosis 1.8).
      const n = v.length;
      assert.ok(max <= bound && max > (1 - 10 / n) * bound, `${name}: max |w| ${max} vs bound ${bound}`);
      assert.ok(Math.abs(mean) < (4 * bound) / Math.sqrt(3 * n), `${name}: mean ${mean}`);
      const slack = Math.max(0.03, 1.8 / Math.sqrt(n));
      assert.ok(Math.abs(std / (bound / Math.sqrt(3)) - 1) < slack, `${name}: std ${std} vs ${bound / Math.sqrt(3)}`);
    };
    checkUniform('layer4.0.0.weight', 9 * 64); // conv 64 → 128 at width 0.25: 73,728 values
    checkUniform('layer4.0.0.bias', 9 * 64);
    checkUniform('layer7.0.weight', 1024); // fc2 Linear(1024, 1024)
    checkUniform('layer1.0.0.weight', 9 * 3);
    assert.ok(get(a, 'layer2.1.1.weight').every((x) => x === 1));
    assert.ok(get(a, 'layer2.1.1.bias').every((x) => x === 0));
    assert.ok(get(a, 'layer2.1.1.running_mean').every((x) => x === 0));
    assert.ok(get(a, 'layer2.1.1.running_var').every((x) => x === 1));

    for (let i = 0; i < a.params.length; i++) {
      assert.equal(a.params[i].name, b.params[i].name);
      assert.deepEqual(a.params[i].variable.dataSync(), b.params[i].variable.dataSync(), `seed 7 twice: ${a.params[i].name}`);
    }
    assert.notDeepEqual(get(a, 'layer3.2.0.weight'), get(c, 'layer3.2.0.weight'));
    // Trainable first, buffers (exactly the running stats) last; kinds follow the ranks.
    const firstBuffer = a.params.findIndex((p) => !p.trainable);
    assert.ok(a.params.slice(firstBuffer).every((p) => !p.trainable && /\.running_(mean|var)$/.test(p.name)));
    assert.ok(a.params.slice(0, firstBuffer).every((p) => p.trainable && p.variable.trainable));
    for (const p of a.params) {
      const rank = { conv: 4, linear: 2, vector: 1 }[p.kind];
      assert.equal(p.variable.rank, rank, p.name);
    }
  } finally {
    a.dispose();
    b.dispose();
    c.dispose();
  }
});

test('channel mask zeroes exactly the chosen channels of the mask tap and changes the logits', async () => {
  await initBackend('wasm');
  const cases: [Builder, Partial<ModelOptions>, [number, number, number]][] = [
    [buildVgg16, { width: 0.25 }, [32, 32, 3]],
    [buildResnet18, { width: 0.125 }, [16, 16, 3]],
    [buildWrn, { depth: 10, widen: 1 }, [16, 16, 3]],
    [buildSmallCnn, { width: 0.5 }, [28, 28, 1]],
  ];
  for (const [builder, o, inputShape] of cases) {
    withModel(builder, options({ numClasses: 10, inputShape, ...o }), 3, (m) => {
      tf.tidy(() => {
        const x = formulaInput(4, ...inputShape);
        const plain = m.forward(x, { training: false });
        const ref = plain.taps[m.maskTap];
        const channels = ref.shape[ref.rank - 1];
        const drop = [0, 2, channels - 1];
        const maskValues = Array.from({ length: channels }, (_, i) => (drop.includes(i) ? 0 : 1));
        let seen: tf.Tensor | null = null;
        let seenInput: tf.Tensor4D | null = null;
        const masked = m.forward(x, {
          training: false,
          channelMask: (features, input) => {
            seen = features;
            seenInput = input;
            return tf.tensor1d(maskValues);
          },
        });
        assert.ok(seen && seenInput === x, `${m.arch}: hook gets the mask-tap features and the raw input`);
        assert.deepEqual((seen as tf.Tensor).shape, ref.shape);
        const got = tf.reshape(masked.taps[m.maskTap], [-1, channels]).arraySync() as number[][];
        const want = tf.reshape(ref, [-1, channels]).arraySync() as number[][];
        for (let r = 0; r < got.length; r++) {
          for (let ch = 0; ch < channels; ch++) {
            const ok = drop.includes(ch) ? got[r][ch] === 0 : got[r][ch] === want[r][ch];
            assert.ok(ok, `${m.arch} row ${r} channel ${ch}: ${got[r][ch]} vs ${want[r][ch]}`);
          }
        }
        const change = tf.max(tf.abs(tf.sub(masked.logits, plain.logits))).dataSync()[0];
        assert.ok(change > 1e-4, `${m.arch}: masking changes the logits (${change})`);
        // An all-ones mask or a null answer leaves everything as it was.
        const ones = m.forward(x, { training: false, channelMask: () => tf.ones([channels]) as tf.Tensor1D });
        const none = m.forward(x, { training: false, channelMask: () => null });
        assert.deepEqual(ones.logits.dataSync(), plain.logits.dataSync());
        assert.deepEqual(none.logits.dataSync(), plain.logits.dataSync());
        assert.throws(() => m.forward(x, { training: false, channelMask: () => tf.ones([channels + 1]) as tf.Tensor1D }), /channel mask must have shape/);
      });
    });
  }
});

test('a mask computed with non-differentiable ops (topk) inside a gradient tape is a constant', async () => {
  await initBackend('wasm');
  withModel(buildSmallCnn, options({ numClasses: 3, inputShape: [8, 8, 3], width: 0.25 }), 1, (m) => {
    tf.tidy(() => {
      const x = formulaInput(3, 8, 8, 3);
      const hook = (features: tf.Tensor): tf.Tensor1D => {
        const score = tf.sum(features, 0) as tf.Tensor1D;
        const { indices } = tf.topk(tf.neg(score), 2); // the two weakest channels
        return tf.sub(1, tf.sum(tf.oneHot(indices, score.size), 0)) as tf.Tensor1D;
      };
      const dx = tf.grad((input: tf.Tensor) => tf.sum(m.forward(input as tf.Tensor4D, { training: false, channelMask: hook }).logits))(x);
      assert.deepEqual(dx.shape, x.shape);
      assert.ok(Number.isFinite(tf.sum(tf.abs(dx)).dataSync()[0]));
    });
  });
});

test('dropout (wrn): seeded, only in training; init independent of the dropout rate', async () => {
  await initBackend('wasm');
  const o = (dropout: number): ModelOptions => options({ numClasses: 4, inputShape: [8, 8, 3], depth: 10, widen: 1, dropout });
  const a = buildWrn(o(0.3), new Rng(5));
  const b = buildWrn(o(0.3), new Rng(5));
  const plain = buildWrn(o(0), new Rng(5));
  try {
    tf.tidy(() => {
      const x = formulaInput(4, 8, 8, 3);
      const ev = (m: Model): Float32Array => m.forward(x, { training: false }).logits.dataSync() as Float32Array;
      assert.deepEqual(ev(a), ev(plain));
      const tr = (m: Model): Float32Array => m.forward(x, { training: true }).logits.dataSync() as Float32Array;
      const a1 = tr(a);
      const a2 = tr(a);
      assert.deepEqual(a1, tr(b), 'same seed, same masks');
      assert.deepEqual(a2, tr(b));
      assert.notDeepEqual(a1, a2, 'a fresh mask per forward');
      assert.notDeepEqual(a1, tr(plain));
    });
  } finally {
    a.dispose();
    b.dispose();
    plain.dispose();
  }
});

test('normalize: (x − mean)/std inside the model; wrong lengths are a UserError', async () => {
  await initBackend('wasm');
  const mean = [0.4914, 0.4822, 0.4465];
  const std = [0.247, 0.243, 0.261];
  const withNorm = buildSmallCnn(options({ numClasses: 5, inputShape: [8, 8, 3], width: 0.25, normalize: { mean, std } }), new Rng(2));
  const without = buildSmallCnn(options({ numClasses: 5, inputShape: [8, 8, 3], width: 0.25 }), new Rng(2));
  try {
    tf.tidy(() => {
      const x = formulaInput(2, 8, 8, 3);
      const xn = tf.div(tf.sub(x, tf.tensor1d(mean)), tf.tensor1d(std)) as tf.Tensor4D;
      const got = withNorm.forward(x, { training: false }).logits.dataSync();
      const want = without.forward(xn, { training: false }).logits.dataSync();
      for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) < 1e-5, `${got[i]} vs ${want[i]}`);
    });
  } finally {
    withNorm.dispose();
    without.dispose();
  }
  assert.throws(
    () => buildSmallCnn(options({ numClasses: 5, inputShape: [8, 8, 1], normalize: { mean, std } }), new Rng(2)),
    (e: unknown) => e instanceof UserError && /one mean and one std per input channel \(1\)/.test(e.message),
  );
});

test('registry: every config arch builds; unknown arch and bad options are UserErrors', async () => {
  await initBackend('wasm');
  assert.deepEqual([...listArchs()].sort(), [...ARCHS].sort());
  const cfg = (arch: string, extra: Partial<ModelConfig> = {}): ModelConfig =>
    ({ arch, width: 0.125, depth: 10, widen: 1, dropout: 0, normalize: null, ...extra }) as ModelConfig;
  for (const arch of listArchs()) {
    const m = buildModel(cfg(arch, arch === 'wrn' ? { width: 1 } : {}), 3, [16, 16, 3], new Rng(0));
    try {
      assert.equal(m.arch, arch);
      assert.equal(m.numClasses, 3);
      assert.deepEqual(m.inputShape, [16, 16, 3]);
      assert.ok(m.tapNames.includes(m.maskTap));
    } finally {
      m.dispose();
    }
  }
  assert.throws(
    () => buildModel(cfg('alexnet'), 10, [32, 32, 3], new Rng(0)),
    (e: unknown) => e instanceof UserError && /unknown model\.arch 'alexnet'.*small-cnn, vgg16, resnet18, wrn/.test(e.message),
  );
  assert.throws(() => buildModel(cfg('wrn', { depth: 12, width: 1 }), 10, [32, 32, 3], new Rng(0)), (e: unknown) => e instanceof UserError && /6n\+4/.test(e.message));
  assert.throws(() => buildModel(cfg('vgg16'), 0, [32, 32, 3], new Rng(0)), UserError);
  assert.throws(() => buildModel(cfg('wrn', { width: 0.5 }), 10, [32, 32, 3], new Rng(0)), (e: unknown) => e instanceof UserError && /model\.widen/.test(e.message));
  assert.throws(() => buildModel(cfg('resnet18', { dropout: 0.3 }), 10, [32, 32, 3], new Rng(0)), (e: unknown) => e instanceof UserError && /only to wrn/.test(e.message));
  const m = buildModel(cfg('small-cnn'), 3, [16, 16, 3], new Rng(0));
  try {
    assert.throws(() => m.forward(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D, { training: false }), /expected input \[batch, 16, 16, 3\]/);
  } finally {
    m.dispose();
  }
  // Train-mode BatchNorm1d on a batch of one has a single value per channel (PyTorch refuses too).
  const v = buildModel(cfg('vgg16'), 3, [32, 32, 3], new Rng(0));
  try {
    assert.throws(
      () => tf.tidy(() => void v.forward(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D, { training: true })),
      (e: unknown) => e instanceof UserError && /more than 1 value per channel/.test(e.message),
    );
  } finally {
    v.dispose();
  }
});

test('no tensor leaks: repeated forwards (train, eval, masked) and gradients inside tidy', async () => {
  await initBackend('wasm');
  const builders: [Builder, Partial<ModelOptions>][] = [
    [buildVgg16, { width: 0.125 }],
    [buildResnet18, { width: 0.125 }],
    [buildWrn, { depth: 10, widen: 1, dropout: 0.2 }],
    [buildSmallCnn, { width: 0.25 }],
  ];
  for (const [builder, o] of builders) {
    withModel(builder, options({ numClasses: 5, inputShape: [32, 32, 3], ...o }), 0, (m) => {
      const x = formulaInput(2, 32, 32, 3);
      const run = (): void => {
        tf.tidy(() => {
          m.forward(x, { training: true });
          m.forward(x, { training: false });
          const c = m.forward(x, { training: false }).taps[m.maskTap].shape.slice(-1)[0];
          m.forward(x, { training: true, channelMask: () => tf.ones([c]) as tf.Tensor1D });
          tf.grad((input: tf.Tensor) => tf.sum(m.forward(input as tf.Tensor4D, { training: false }).logits))(x);
        });
      };
      run();
      const before = tf.memory().numTensors;
      run();
      run();
      assert.equal(tf.memory().numTensors, before, `${m.arch} leaks`);
      x.dispose();
    });
  }
  const before = tf.memory().numTensors;
  const m = buildResnet18(options({ numClasses: 5, inputShape: [8, 8, 3], width: 0.125 }), new Rng(0));
  m.dispose();
  m.dispose();
  assert.equal(tf.memory().numTensors, before, 'dispose frees every variable');
  assert.throws(() => m.forward(tf.zeros([1, 8, 8, 3]) as tf.Tensor4D, { training: false }), /after dispose/);
});

test('every trainable parameter gets a gradient; buffers get none (cpu)', async () => {
  await initBackend('cpu');
  const builders: [Builder, Partial<ModelOptions>][] = [
    [buildVgg16, { width: 1 / 32 }],
    [buildResnet18, { width: 1 / 32 }],
    [buildWrn, { depth: 10, widen: 1 }],
    [buildSmallCnn, { width: 0.125 }],
  ];
  for (const [builder, o] of builders) {
    withModel(builder, options({ numClasses: 3, inputShape: [16, 16, 3], ...o }), 0, (m) => {
      tf.tidy(() => {
        const x = formulaInput(4, 16, 16, 3);
        const trainable = m.params.filter((p) => p.trainable);
        const { grads } = tf.variableGrads(() => tf.sum(tf.square(m.forward(x, { training: true }).logits)), trainable.map((p) => p.variable));
        for (const p of trainable) assert.ok(grads[p.variable.name], `${m.arch}: no gradient for ${p.name}`);
        assert.equal(Object.keys(grads).length, trainable.length);
      });
    });
  }
});
