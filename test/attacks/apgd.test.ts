// APGD pieces checked by hand: the checkpoint schedule (Croce & Hein 2020, §3.2), the DLR
// losses, and AutoAttack's rule that only initially correct points are attacked.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { apgdCheckpoints, apgdLossPerExample, apgdSchedule } from '../../src/attacks/apgd-core';
import { getAttack } from '../../src/attacks/registry';
import { UserError } from '../../src/errors';
import { flat, readGolden } from '../helpers/golden';
import { mlpTarget, nchwToNhwc } from './helpers';

before(async () => {
  await initBackend('wasm');
});

test('checkpoints for 100 steps follow the paper: p₀=0, p₁=.22, p_{j+1} = p_j + max(p_j − p_{j−1} − .03, .06)', () => {
  // In hundredths, to keep the ceil exact: w_j = ⌈p_j·N⌉ with N = 100.
  const paper: number[] = [];
  let prev = 0;
  let cur = 22;
  while (cur <= 100) {
    paper.push(cur);
    [prev, cur] = [cur, cur + Math.max(cur - prev - 3, 6)];
  }
  assert.deepEqual(paper, [22, 41, 57, 70, 80, 87, 93, 99]);
  assert.deepEqual(apgdCheckpoints(100), paper);
  assert.deepEqual(apgdSchedule(100), { first: 22, min: 6, decrement: 3 });
});

test('checkpoints for short runs follow the code (floors, at least 1)', () => {
  // 10 steps: k₀ = ⌊2.2⌋ = 2, then every step (min ⌊0.6⌋ → 1).
  assert.deepEqual(apgdCheckpoints(10), [2, 3, 4, 5, 6, 7, 8, 9, 10]);
  // 50 steps: k₀ = 11, decrement 1, min 3.
  assert.deepEqual(apgdCheckpoints(50), [11, 21, 30, 38, 45]);
  assert.deepEqual(apgdCheckpoints(3), [1, 2, 3]);
});

test('DLR and targeted DLR losses, by hand', () => {
  const logits = tf.tensor2d([
    [3, 1, 2, 0.5, -1],
    [3, 1, 2, 0.5, -1],
    [3, 1, 2, 0.5, -1],
  ]);
  const y = Int32Array.from([0, 3, 0]);
  // y on top: −(z_y − z_π2)/(z_π1 − z_π3) = −(3 − 2)/(3 − 1); y = 3: −(0.5 − 3)/(3 − 1).
  const dlr = apgdLossPerExample(logits, y, null, 'dlr').dataSync();
  assert.ok(Math.abs(dlr[0] + 0.5) < 1e-6 && Math.abs(dlr[1] - 1.25) < 1e-6 && Math.abs(dlr[2] + 0.5) < 1e-6, `${dlr}`);
  // Targeted, t = 2: −(z_y − z_t)/(z_π1 − ½(z_π3 + z_π4)) = −(3 − 2)/(3 − 0.75).
  const t = Int32Array.from([2, 2, 4]);
  const dt = apgdLossPerExample(logits, y, t, 'dlr-targeted').dataSync();
  assert.ok(Math.abs(dt[0] + 1 / 2.25) < 1e-6, `${dt}`);
  assert.ok(Math.abs(dt[1] - 1.5 / 2.25) < 1e-6, `${dt}`);
  assert.ok(Math.abs(dt[2] + 4 / 2.25) < 1e-6, `${dt}`);
  // CE for comparison: log-sum-exp − z_y.
  const ce = apgdLossPerExample(logits, y, null, 'ce').dataSync();
  const lse = Math.log([3, 1, 2, 0.5, -1].reduce((s, v) => s + Math.exp(v), 0));
  assert.ok(Math.abs(ce[0] - (lse - 3)) < 1e-5);
  logits.dispose();
});

test('APGD, FAB, Square and AutoAttack leave initially misclassified points alone', async () => {
  const G = readGolden('attacks.json');
  const target = mlpTarget(G.model.layers, [3, 4, 4]);
  const shape = G.inputs.x_shape as [number, number, number, number];
  const x = nchwToNhwc(flat(G.inputs.x), shape);
  const y = tf.tensor1d(G.inputs.labels, 'int32'); // the last one is mislabelled
  const last = shape[0] - 1;
  const params: Record<string, Record<string, unknown>> = {
    'apgd-ce': { eps: 0.05 },
    'apgd-dlr': { eps: 0.05, steps: 10 },
    'apgd-t': { eps: 0.05, steps: 10, nTargets: 2 },
    fab: { eps: 0.05 },
    'fab-t': { eps: 0.05, steps: 5, nTargets: 2 },
    square: { eps: 0.05, queries: 30 },
    autoattack: { eps: 0.05, steps: 5, nTargets: 2, queries: 20 },
  };
  for (const [name, p] of Object.entries(params)) {
    const res = await getAttack(name).run({ target, rng: new Rng(0) }, x, y, p);
    const rows = tf.tidy(() => tf.max(tf.abs(tf.sub(res.xAdv, x)), [1, 2, 3]).dataSync());
    assert.equal(rows[last], 0, `${name} moved the misclassified example`);
    assert.ok(Array.from(rows).some((v) => v > 0), `${name} moved nothing at all`);
    res.xAdv.dispose();
  }
  // DLR needs 3 classes, targeted DLR 4.
  const tiny = { numClasses: 3, logits: (xi: tf.Tensor4D) => tf.tidy(() => tf.slice(target.logits(xi), [0, 0], [-1, 3]) as tf.Tensor2D) };
  const y3 = tf.tensor1d([0, 1, 2, 0, 1, 2], 'int32');
  await assert.rejects(getAttack('apgd-t').run({ target: tiny, rng: new Rng(0) }, x, y3, {}), UserError);
  tf.dispose([x, y, y3]);
  target.dispose();
});
