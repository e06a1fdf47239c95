import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { UserError } from '../../src/errors';
import { ibRegularizer, ibTargets, resolveLayers } from '../../src/ib/regularizer';
import { flat, readGolden, worstRatio } from '../helpers/golden';

const golden = readGolden('ib_regularizer.json');

function inputs(): { x: tf.Tensor; y: tf.Tensor2D; taps: Record<string, tf.Tensor> } {
  const x = tf.tensor(flat(golden.inputs.X), golden.inputs.X_shape);
  const labels: number[] = golden.inputs.labels;
  const y = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(labels, 'int32'), Math.max(...labels) + 1), 'float32')) as tf.Tensor2D;
  const taps: Record<string, tf.Tensor> = {};
  golden.inputs.T.forEach((t: unknown, i: number) => (taps[`t${i}`] = tf.tensor(flat(t), golden.inputs.T_shapes[i])));
  return { x, y, taps };
}

for (const backend of ['wasm', 'cpu'] as const) {
  for (const c of golden.cases) {
    test(`Eq. (1) value, per-layer HSICs and ∂/∂T match the golden (${c.name}, ${backend})`, async () => {
      await initBackend(backend);
      const before = tf.memory().numTensors;
      const { x, y, taps } = inputs();
      const layers = (c.layers as number[]).map((l) => `t${l}`);
      const gradWrt = Object.keys(c.expected.grad_wrt_T ?? {}).map(Number);
      const args = { x, yOneHot: y, layers, alpha: c.lx, beta: c.ly, yKernel: c.y_kernel as 'linear' | 'gaussian' };
      let result: ReturnType<typeof ibRegularizer> | undefined;
      const f = (...ts: tf.Tensor[]): tf.Scalar => {
        const tp = { ...taps };
        gradWrt.forEach((l, i) => (tp[`t${l}`] = ts[i]));
        result = ibRegularizer({ ...args, taps: tp });
        return result.loss;
      };
      if (gradWrt.length) {
        const { value, grads } = tf.valueAndGrads(f)(gradWrt.map((l) => taps[`t${l}`]));
        assert.ok(worstRatio(value.dataSync(), [c.expected.value], c.tol.value) <= 1, `loss tensor ${value.dataSync()[0]} vs ${c.expected.value}`);
        gradWrt.forEach((l, i) => {
          const want = flat(c.expected.grad_wrt_T[String(l)]);
          const ratio = worstRatio(grads[i].dataSync(), want, c.tol.grad_wrt_T[String(l)]);
          assert.ok(ratio <= 1, `grad wrt T${l}: worst ratio ${ratio}`);
          assert.deepEqual(grads[i].shape, golden.inputs.T_shapes[l]);
        });
        tf.dispose([value, ...grads]);
      } else {
        const loss = f();
        assert.ok(worstRatio(loss.dataSync(), [c.expected.value], c.tol.value) <= 1);
        loss.dispose();
      }
      // The numbers outlive the tensors.
      const r = result!;
      assert.ok(worstRatio([r.value], [c.expected.value], c.tol.value) <= 1, `value ${r.value} vs ${c.expected.value}`);
      const hx = layers.map((n) => r.perLayer[n].hx);
      const hy = layers.map((n) => r.perLayer[n].hy);
      assert.ok(worstRatio(hx, c.expected.per_layer_hsic_TX, c.tol.per_layer_hsic_TX) <= 1, `hx ${hx}`);
      assert.ok(worstRatio(hy, c.expected.per_layer_hsic_TY, c.tol.per_layer_hsic_TY) <= 1, `hy ${hy}`);
      assert.deepEqual(Object.keys(r.perLayer).sort(), [...layers].sort());
      tf.dispose([x, y, ...Object.values(taps)]);
      assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
    });
  }
}

test('the per-layer tolerance tells a linear from a gaussian Y kernel, and α from β', async () => {
  await initBackend('wasm');
  const { x, y, taps } = inputs();
  const c = golden.cases.find((k: any) => k.name === 'robust_layers_linearY_code_defaults');
  const layers = (c.layers as number[]).map((l) => `t${l}`);
  const wrongKernel = ibRegularizer({ x, yOneHot: y, taps, layers, alpha: c.lx, beta: c.ly, yKernel: 'gaussian' });
  const hy = layers.map((n) => wrongKernel.perLayer[n].hy);
  assert.ok(worstRatio(hy, c.expected.per_layer_hsic_TY, c.tol.per_layer_hsic_TY) > 1);
  const swapped = ibRegularizer({ x, yOneHot: y, taps, layers, alpha: c.ly, beta: c.lx, yKernel: 'linear' });
  assert.ok(worstRatio([swapped.value], [c.expected.value], c.tol.value) > 1);
  tf.dispose([wrongKernel.loss, swapped.loss, x, y, ...Object.values(taps)]);
});

test('precomputed targets give the same terms, and are checked against the Y kernel', async () => {
  await initBackend('wasm');
  const { x, y, taps } = inputs();
  const c = golden.cases[0];
  const layers = (c.layers as number[]).map((l) => `t${l}`);
  const targets = ibTargets(x, y, 'linear');
  const r = ibRegularizer({ x, yOneHot: y, taps, layers, alpha: c.lx, beta: c.ly, yKernel: 'linear', targets });
  assert.ok(worstRatio([r.value], [c.expected.value], c.tol.value) <= 1);
  assert.throws(() => ibRegularizer({ x, yOneHot: y, taps, layers, alpha: 1, beta: 1, yKernel: 'gaussian', targets }), /linear Y kernel/);
  tf.dispose([r.loss, x, y, ...Object.values(taps)]);
});

test('ibRegularizer rejects missing taps and mismatched batches', async () => {
  await initBackend('wasm');
  const { x, y, taps } = inputs();
  const base = { x, yOneHot: y, taps, alpha: 1, beta: 1, yKernel: 'linear' as const };
  assert.throws(() => ibRegularizer({ ...base, layers: ['nope'] }), /no tap 'nope'.*t0, t1, t2, t3/);
  const short = tf.zeros([3, 4]);
  assert.throws(() => ibRegularizer({ ...base, taps: { ...taps, short }, layers: ['short'] }), /batch is 16/);
  tf.dispose([x, y, short, ...Object.values(taps)]);
});

const VGG = { arch: 'vgg16', tapNames: ['block1', 'block2', 'block3', 'block4', 'block5', 'fc1', 'fc2'] };
const RESNET = { arch: 'resnet18', tapNames: ['conv1', 'layer1.0', 'layer1.1', 'layer4.1', 'pool'] };

test('resolveLayers: presets, explicit lists in network order, and errors naming the valid taps', () => {
  assert.deepEqual(resolveLayers('all', VGG), VGG.tapNames);
  assert.deepEqual(resolveLayers('robust', VGG), ['block5', 'fc1', 'fc2']);
  assert.deepEqual(resolveLayers('robust', RESNET), ['layer4.1', 'pool']);
  assert.deepEqual(resolveLayers(['fc2', 'block1'], VGG), ['block1', 'fc2']);
  assert.throws(
    () => resolveLayers(['fc3', 'block1', 'conv9'], VGG),
    (e: unknown) => e instanceof UserError && /'fc3', 'conv9'/.test(e.message) && /block1, block2, block3, block4, block5, fc1, fc2/.test(e.message),
  );
  assert.throws(() => resolveLayers(['fc1', 'fc1'], VGG), (e: unknown) => e instanceof UserError && /'fc1' more than once/.test(e.message));
  assert.throws(() => resolveLayers([], VGG), UserError);
  assert.throws(
    () => resolveLayers('robust', { arch: 'vgg16', tapNames: ['a', 'b'] }),
    (e: unknown) => e instanceof UserError && /block5, fc1, fc2/.test(e.message),
  );
});
