import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { ccaTarget, hsicCcaValue } from '../../src/ib/hsic';
import {
  channelScores,
  computeChannelMask,
  labelTarget,
  makeChannelMaskHook,
  selectCodeRule,
  selectPaperRule,
  type MaskRuleOptions,
} from '../../src/ib/mask';
import { flat, readGolden, worstRatio } from '../helpers/golden';

const golden = readGolden('channel_mask.json');
const labels: number[] = golden.inputs.labels;
const numClasses = Math.max(...labels) + 1;
const CODE: MaskRuleOptions = { rule: 'code', drop: 0.05, lowY: golden.code_rule.num_filtered, highX: golden.code_rule.num_filtered, skipLastChannel: true };
const PAPER: MaskRuleOptions = { rule: 'paper', drop: 0.05, lowY: 10, highX: 10, skipLastChannel: false };

/** The golden tensors are NCHW; the model hands the hook NHWC. */
function goldenInputs(): { x: tf.Tensor4D; features: tf.Tensor4D } {
  return tf.tidy(() => ({
    x: tf.transpose(tf.tensor4d(flat(golden.inputs.X), golden.inputs.X_shape), [0, 2, 3, 1]),
    features: tf.transpose(tf.tensor4d(flat(golden.inputs.T_last_conv), golden.inputs.T_shape), [0, 2, 3, 1]),
  }));
}

for (const backend of ['wasm', 'cpu'] as const) {
  test(`code rule: I_x, I_y within tolerance and the channel sets exact (${backend})`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const { x, features } = goldenInputs();
    const r = computeChannelMask({ features, input: x, labels, numClasses, rule: CODE });
    const want = golden.code_rule.expected;
    assert.equal(r.scores.iy.length, golden.inputs.T_shape[1] - 1, 'the last channel is not scored');
    assert.ok(worstRatio(r.scores.ix!, want.I_x, golden.code_rule.tol.I_x) <= 1, 'I_x');
    assert.ok(worstRatio(r.scores.iy, want.I_y, golden.code_rule.tol.I_y) <= 1, 'I_y');
    assert.deepEqual(r.lowY, want.lowest_I_y_channels);
    assert.deepEqual(r.highX, want.highest_I_x_channels);
    assert.deepEqual(r.dropped, want.zeroed_channels);
    assert.deepEqual(Array.from(r.mask), want.mask_per_channel);
    tf.dispose([x, features]);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });

  test(`paper rule: I_y over all C, the dropped set and the threshold (${backend})`, async () => {
    await initBackend(backend);
    const before = tf.memory().numTensors;
    const { x, features } = goldenInputs();
    const r = computeChannelMask({ features, input: x, labels, numClasses, rule: PAPER });
    const want = golden.paper_rule.expected;
    const tol = golden.paper_rule.tol.I_y_all;
    assert.ok(worstRatio(r.scores.iy, want.I_y_all, tol) <= 1, 'I_y_all');
    assert.equal(r.scores.ix, undefined, 'the paper rule needs no I_x');
    assert.equal(r.dropped.length, golden.paper_rule.k);
    assert.deepEqual(r.dropped, want.dropped_channels);
    assert.ok(worstRatio([r.threshold!], [want.threshold], tol) <= 1, `threshold ${r.threshold}`);
    assert.deepEqual(Array.from(r.mask), want.mask_per_channel);
    // The label-free last channel: dropped by the paper rule, untouchable by the code rule.
    const last = golden.inputs.T_shape[1] - 1;
    assert.ok(r.dropped.includes(last));
    tf.dispose([x, features]);
    assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  });
}

test('a vector tap [m, C] scores like the same features as [m, 1, 1, C]', async () => {
  await initBackend('wasm');
  const { x, features } = goldenInputs();
  const vec = tf.reshape(features, [features.shape[0], features.shape[3]]);
  const a = computeChannelMask({ features: vec, input: x, labels, numClasses, rule: CODE });
  assert.deepEqual(a.dropped, golden.code_rule.expected.zeroed_channels);
  tf.dispose([x, features, vec]);
});

test('h·w > 1 (batched Gram path) and the low-rank label path agree with per-channel HSIC_cca', async () => {
  await initBackend('wasm');
  const rng = new Rng(11);
  const m = 14;
  const C = 5;
  const before = tf.memory().numTensors;
  tf.tidy(() => {
    const fData = new Float32Array(m * 2 * 2 * C).map(() => Math.max(0, rng.normal() + 0.3));
    const features = tf.tensor4d(fData, [m, 2, 2, C]);
    const x = tf.tensor4d(new Float32Array(m * 3 * 3 * 2).map(() => rng.next()), [m, 3, 3, 2]);
    const lab = Array.from({ length: m }, (_, i) => (i < 3 ? i : rng.int(3)));
    const y = tf.cast(tf.oneHot(tf.tensor1d(lab, 'int32'), 3), 'float32');
    const yT = labelTarget(lab, 3);
    const yFull = { ...yT, lowRank: undefined };
    const [iyLow] = channelScores(features, [yT], C);
    const [iyFull, ix] = channelScores(features, [yFull, ccaTarget(x, 'gaussian')], C);
    for (let c = 0; c < C; c++) {
      const fc = tf.slice(features, [0, 0, 0, c], [m, 2, 2, 1]);
      const wantY = hsicCcaValue(fc, y);
      const wantX = hsicCcaValue(x, fc);
      assert.ok(Math.abs(iyLow[c] - wantY) < 1e-6 * (1 + wantY), `I_y[${c}] low-rank ${iyLow[c]} vs ${wantY}`);
      assert.ok(Math.abs(iyFull[c] - wantY) < 1e-6 * (1 + wantY), `I_y[${c}] full ${iyFull[c]} vs ${wantY}`);
      assert.ok(Math.abs(ix[c] - wantX) < 1e-6 * (1 + wantX), `I_x[${c}] ${ix[c]} vs ${wantX}`);
      assert.ok(iyLow[c] >= 0 && iyLow[c] <= 2 + 1e-9, 'I_y ≤ k − 1 for one-hot Y');
    }
  });
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
});

test('selection rules: stable ties, union, k = ⌊drop·C⌋, NaN never counts as lowest', () => {
  // lowest I_y: ties → lower index first; highest I_x: ties → higher index first (stable ascending sort, read from the end)
  const code = selectCodeRule([5, 9, 9, 1, 9], [0.5, 0.1, 0.3, 0.1, 0.7], 2, 2);
  assert.deepEqual(code.lowY, [1, 3]);
  assert.deepEqual(code.highX, [4, 2]);
  assert.deepEqual(code.dropped, [1, 2, 3, 4]);
  const overlap = selectCodeRule([9, 1, 1], [0, 1, 2], 1, 1);
  assert.deepEqual(overlap.dropped, [0], 'union, not a concatenation');
  const paper = selectPaperRule([0.4, 0.2, 0.2, 0.9, 0.1], 5, 0.5); // k = ⌊2.5⌋ = 2
  assert.deepEqual(paper.dropped, [1, 4]);
  assert.equal(paper.threshold, 0.2);
  assert.deepEqual(selectPaperRule([1, 2, 3], 3, 0.2), { dropped: [], threshold: null }); // ⌊0.6⌋ = 0
  assert.deepEqual(selectPaperRule([NaN, 2, 3], 3, 0.34).dropped, [1]);
  assert.deepEqual(selectPaperRule([1, 2], 64, 0.05).dropped, [0, 1], 'k is capped by the scored channels');
});

test('makeChannelMaskHook: a constant {0,1} mask tensor, results reported, usable under a gradient tape', async () => {
  await initBackend('wasm');
  const { x, features } = goldenInputs();
  const before = tf.memory().numTensors;
  const seen: number[][] = [];
  const hook = makeChannelMaskHook({ labels, numClasses, rule: CODE, onResult: (r) => seen.push(r.dropped) });
  const m = tf.tidy(() => {
    const mask = hook(features, x);
    assert.deepEqual(mask.shape, [golden.inputs.T_shape[1]]);
    return mask;
  });
  assert.deepEqual(Array.from(m.dataSync()), golden.code_rule.expected.mask_per_channel);
  assert.deepEqual(seen, [golden.code_rule.expected.zeroed_channels]);
  m.dispose();
  // Inside a gradient: the mask is a constant, so d/dF Σ(F·mask) is the mask itself.
  const g = tf.grad((f: tf.Tensor) => tf.sum(tf.mul(f, hook(f, x))))(features);
  const gd = g.dataSync();
  const C = golden.inputs.T_shape[1];
  for (let i = 0; i < gd.length; i++) assert.equal(gd[i], golden.code_rule.expected.mask_per_channel[i % C]);
  g.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
  assert.throws(() => tf.tidy(() => hook(tf.zeros([3, 1, 1, 4]), x)), /batch/);
  tf.dispose([x, features]);
});
