// CW-L2 properties on the golden MLP: kept iterates are misclassified, the reported L2 is
// theirs, the early stop fires exactly where the rule says, and the two margins differ where
// they should (log-softmax outputs; saturated pixels).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { cw, cwF, cwL2 } from '../../src/attacks/cw';
import type { AttackTarget } from '../../src/attacks/types';
import { flat, readGolden } from '../helpers/golden';
import { mlpTarget, nchwToNhwc } from './helpers';

const G = readGolden('attacks.json');
const shape = G.inputs.x_shape as [number, number, number, number];
let target: ReturnType<typeof mlpTarget>;
let x: tf.Tensor4D;
let y: tf.Tensor1D;
const labels: number[] = G.inputs.labels;

before(async () => {
  await initBackend('wasm');
  target = mlpTarget(G.model.layers, [3, 4, 4]);
  x = nchwToNhwc(flat(G.inputs.x), shape);
  y = tf.tensor1d(labels, 'int32');
});

after(() => {
  target.dispose();
  tf.dispose([x, y]);
});

function predOf(t: AttackTarget, xa: tf.Tensor4D): number[] {
  return Array.from(tf.tidy(() => tf.argMax(t.logits(xa), 1).dataSync()));
}

function rowL2(a: tf.Tensor4D, b: tf.Tensor4D): number[] {
  return Array.from(tf.tidy(() => tf.sqrt(tf.sum(tf.square(tf.sub(a, b)), [1, 2, 3])).dataSync()));
}

test('kept iterates are misclassified, the rest are x, and the distances are their L2 distances (∞ where unchanged)', async () => {
  const clean = predOf(target, x);
  const res = await cw.run({ target, rng: new Rng(0) }, x, y, { c: 1, steps: 60 });
  const pred = predOf(target, res.xAdv);
  const l2 = rowL2(res.xAdv, x);
  const succ: number[] = [];
  const dist = res.distances!;
  pred.forEach((p, i) => {
    if (l2[i] === 0) {
      // Unchanged: never misclassified (an initially wrong example is kept at distance 0).
      assert.ok(dist[i] === Infinity || (dist[i] === 0 && clean[i] !== labels[i]), `example ${i}: distance ${dist[i]}`);
      return;
    }
    assert.notEqual(p, labels[i], `example ${i} was changed but is not misclassified`);
    assert.ok(Math.abs(dist[i] - l2[i]) < 1e-5, `example ${i}: distance ${dist[i]} vs L2 ${l2[i]}`);
    if (clean[i] === labels[i]) succ.push(l2[i]);
  });
  assert.ok(succ.length >= 2, 'the case must have successes');
  res.xAdv.dispose();
});

test('early stop: at the first check step whose cost exceeds the previous check’s', async () => {
  for (const [steps, lr] of [
    [60, 0.1],
    [40, 0.5],
    [7, 0.01],
  ]) {
    const run = await cwL2({ target }, x, y, { c: 1, kappa: 0, steps, lr, margin: 'standard' }, { trace: true });
    const trace = run.costTrace!;
    const every = Math.max(Math.floor(steps / 10), 1);
    let prev = 1e10;
    let expected: number | null = null;
    for (let s = 0; s < steps; s += every) {
      if (trace[s] > prev) {
        expected = s;
        break;
      }
      prev = trace[s];
    }
    assert.equal(run.stoppedAt, expected, `steps ${steps}, lr ${lr}: trace ${trace.map((v) => v.toFixed(4))}`);
    assert.equal(trace.length, expected === null ? steps : expected + 1);
    run.xAdv.dispose();
  }
});

test('log-softmax outputs: the torchattacks f is identically 0, the standard f is that of the logits', async () => {
  const logSoftmaxTarget: AttackTarget = { numClasses: 5, logits: (xi) => tf.tidy(() => tf.logSoftmax(target.logits(xi))) };
  const clean = predOf(target, x);
  const [fQuirk, fStd, fLogits] = tf.tidy(() => {
    const yOh = tf.cast(tf.oneHot(y, 5), 'float32') as tf.Tensor2D;
    const ls = logSoftmaxTarget.logits(x);
    return [cwF(ls, yOh, 0, 'torchattacks'), cwF(ls, yOh, 0, 'standard'), cwF(target.logits(x), yOh, 0, 'standard')].map((t) => Array.from(t.dataSync()));
  });
  clean.forEach((p, i) => {
    assert.ok(fQuirk[i] === 0, `example ${i}: ${fQuirk[i]}`);
    if (p === labels[i]) assert.ok(fStd[i] > 0.05);
    assert.ok(Math.abs(fStd[i] - fLogits[i]) < 1e-5);
  });
  // So the standard margin attacks log-softmax outputs exactly as it attacks the logits.
  const a = await cw.run({ target: logSoftmaxTarget, rng: new Rng(0) }, x, y, { c: 1, steps: 30 });
  const b = await cw.run({ target, rng: new Rng(0) }, x, y, { c: 1, steps: 30 });
  const fooled = (d: Float32Array) => Array.from(d, (v) => v < Infinity);
  assert.ok(fooled(a.distances!).some(Boolean));
  assert.deepEqual(fooled(a.distances!), fooled(b.distances!));
  a.distances!.forEach((v, i) => assert.ok(v === b.distances![i] || Math.abs(v - b.distances![i]) < 1e-3, `example ${i}`));
  tf.dispose([a.xAdv, b.xAdv]);
});

test('saturated pixels: frozen under the torchattacks margin, free under the standard one', async () => {
  const xs = x.dataSync();
  const sat = Array.from(xs.keys()).filter((i) => xs[i] === 0 || xs[i] === 1);
  assert.ok(sat.length >= 10);
  const quirk = await cw.run({ target, rng: new Rng(0) }, x, y, { c: 1, steps: 100, margin: 'torchattacks' });
  const std = await cw.run({ target, rng: new Rng(0) }, x, y, { c: 1, steps: 100, margin: 'standard' });
  const q = quirk.xAdv.dataSync();
  const s = std.xAdv.dataSync();
  assert.ok(sat.every((i) => q[i] === xs[i]), 'torchattacks: saturated pixels must not move');
  assert.ok(sat.some((i) => Math.abs(s[i] - xs[i]) > 0.01), 'standard: some saturated pixel should move');
  assert.ok(Array.from(s).every(Number.isFinite) && Array.from(q).every(Number.isFinite));
  tf.dispose([quirk.xAdv, std.xAdv]);
});
