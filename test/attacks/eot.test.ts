// EOT (attacks/eot.ts): the averaged gradient converges to the mean gradient of a randomized
// target; on a deterministic target eot > 1 is the plain attack (and says so); a randomized
// target whose single-sample gradients mislead falls to PGD / APGD with eot 20 where eot 1
// fails; the stochastic forwards of VIB and WRN-dropout models.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { Eot, eotInputGrad } from '../../src/attacks/eot';
import { ceMean, oneHot } from '../../src/attacks/common';
import { getAttack } from '../../src/attacks/registry';
import { targetFromModel } from '../../src/attacks/target';
import type { AttackTarget } from '../../src/attacks/types';
import { wrapVib } from '../../src/models/vib';
import { buildWrn } from '../../src/models/wrn';
import type { Model } from '../../src/models/types';
import { readGolden } from '../helpers/golden';
import { options } from '../models/helpers';
import { accuracy, mlpTarget } from './helpers';

const G = readGolden('attacks.json');
let base: ReturnType<typeof mlpTarget>;
let decoy: tf.Tensor2D;

before(async () => {
  await initBackend('wasm');
  base = mlpTarget(G.model.layers, [3, 4, 4]);
  decoy = tf.tensor2d(new Rng(11).fillNormal(new Float32Array(48 * 5)), [48, 5]);
});

after(() => {
  base.dispose();
  decoy.dispose();
});

/** base(x) + scale·s·D(x), D linear, s = ±1 per example and per forward (mean: base). */
function signFlipTarget(scale: number): AttackTarget & { withSign(s: number): AttackTarget } {
  const d = (x: tf.Tensor4D) => tf.mul(tf.matMul(tf.reshape(x, [x.shape[0], 48]), decoy), scale);
  return {
    numClasses: 5,
    logits: (x) => base.logits(x),
    sampleLogits: (x, rng) =>
      tf.tidy(() => {
        const s = tf.tensor2d(Float32Array.from({ length: x.shape[0] }, () => (rng.next() < 0.5 ? -1 : 1)), [x.shape[0], 1]);
        return tf.add(base.logits(x), tf.mul(d(x), s)) as tf.Tensor2D;
      }),
    withSign: (s) => ({ numClasses: 5, logits: (x) => tf.tidy(() => tf.add(base.logits(x), tf.mul(d(x), s)) as tf.Tensor2D) }),
  };
}

/**
 * A randomized defense with obfuscated gradients: base(x) + c·Σ_j sin(ω·x_j + φ_j)·V_j with a
 * fresh phase φ_j ~ U(0, 2π) per pixel and forward. Its expected logits are base's (E sin = 0)
 * and each sample's logits stay within ~c·√d·|V| of them, but each sample's gradient carries a
 * term c·ω·cos(·)·V_j per pixel, random, ω/… times larger than base's.
 */
function phaseNoiseTarget(omega: number, c = 0.01): AttackTarget {
  return {
    numClasses: 5,
    logits: (x) => base.logits(x),
    sampleLogits: (x, rng) =>
      tf.tidy(() => {
        const n = x.shape[0];
        const phase = tf.tensor2d(rng.fillUniform(new Float32Array(n * 48), 0, 2 * Math.PI), [n, 48]);
        const wave = tf.sin(tf.add(tf.mul(tf.reshape(x, [n, 48]), omega), phase));
        return tf.add(base.logits(x), tf.mul(tf.matMul(wave, decoy), c)) as tf.Tensor2D;
      }),
  };
}

function inputs(n: number, seed: number): { x: tf.Tensor4D; y: tf.Tensor1D } {
  const x = tf.tensor4d(new Rng(seed).fillUniform(new Float32Array(n * 48), 0, 1), [n, 4, 4, 3]);
  const y = tf.tidy(() => tf.cast(tf.argMax(base.logits(x), 1), 'int32') as tf.Tensor1D);
  return { x, y };
}

function rowNorms(t: tf.Tensor4D): number[] {
  return Array.from(tf.tidy(() => tf.sqrt(tf.sum(tf.square(t), [1, 2, 3])).dataSync()));
}

test('the EOT gradient converges to the mean gradient (error ~ 1/√k)', () => {
  const target = signFlipTarget(2);
  const { x, y } = inputs(8, 1);
  const yOh = oneHot(y, 5);
  const loss = (logits: tf.Tensor2D) => ceMean(logits, yOh);
  const gradOf = (t: AttackTarget) => eotInputGrad(Eot.of({ target: t, rng: new Rng(0) }, 1), loss, x);
  // The two equally likely forwards give g₊ and g₋; the mean gradient is their average.
  const gPlus = gradOf(target.withSign(1));
  const gMinus = gradOf(target.withSign(-1));
  const mean = tf.tidy(() => tf.div(tf.add(gPlus, gMinus), 2) as tf.Tensor4D);
  const spread = tf.tidy(() => tf.div(tf.sub(gPlus, gMinus), 2) as tf.Tensor4D); // ĝ − ḡ = s̄·spread per row
  const halfDiff = rowNorms(spread);
  assert.ok(halfDiff.every((v) => v > 1e-3), 'the samples must disagree');
  const errAt = (k: number) => {
    const est = eotInputGrad(Eot.of({ target, rng: new Rng(5) }, k), loss, x);
    const err = rowNorms(tf.tidy(() => tf.sub(est, mean) as tf.Tensor4D));
    est.dispose();
    return err.map((e, i) => e / halfDiff[i]); // = |mean of the k signs| per row
  };
  const e2 = errAt(2);
  const e1000 = errAt(1000);
  // 2 samples: the mean of two signs is 0 or ±1 exactly.
  e2.forEach((e) => assert.ok(Math.abs(e) < 1e-3 || Math.abs(e - 1) < 1e-3, `2 samples: ${e}`));
  // 1000 samples: |s̄| ≤ 4σ = 4/√1000 ≈ 0.13 per row.
  e1000.forEach((e) => assert.ok(e < 4 / Math.sqrt(1000), `1000 samples: relative error ${e}`));
  tf.dispose([x, y, yOh, gPlus, gMinus, mean, spread]);
});

test('eot > 1 on a deterministic target: the plain attack, bit for bit, with a note in extra', async () => {
  const { x, y } = inputs(6, 2);
  for (const name of ['pgd', 'apgd-ce', 'cw']) {
    const attack = getAttack(name);
    const params = name === 'cw' ? { steps: 10 } : { eps: 0.05, steps: 5 };
    const plain = await attack.run({ target: base, rng: new Rng(1) }, x, y, params);
    const eot = await attack.run({ target: base, rng: new Rng(1) }, x, y, { ...params, eot: 5 });
    assert.deepEqual(Array.from(eot.xAdv.dataSync()), Array.from(plain.xAdv.dataSync()), name);
    assert.equal(eot.extra?.['eot.deterministicTarget'], 1, name);
    assert.equal(plain.extra?.['eot.deterministicTarget'], undefined, name);
    tf.dispose([plain.xAdv, eot.xAdv]);
  }
  tf.dispose([x, y]);
});

test('a randomized defense whose samples mislead falls to eot 20, not to eot 1', async () => {
  // Every forward of the defense, `logits` included, draws fresh phases (phaseNoiseTarget, ω =
  // 300): an eot-1 attack follows one sample's gradient per step, mostly the random wave term;
  // the mean of 20 follows base. Success is judged on the defense's expected logits (base).
  const noisy = phaseNoiseTarget(300);
  const own = new Rng(99);
  const target: AttackTarget = { numClasses: 5, logits: (xi) => noisy.sampleLogits!(xi, own), sampleLogits: noisy.sampleLogits };
  const { x, y } = inputs(64, 3);
  const labels = Array.from(y.dataSync());
  const rates: Record<string, [number, number]> = {};
  for (const [name, params] of [
    ['pgd', { eps: 0.06, steps: 20 }],
    ['apgd-ce', { eps: 0.06, steps: 20 }],
  ] as const) {
    const acc = async (eot: number) => {
      const res = await getAttack(name).run({ target, rng: new Rng(4) }, x, y, { ...params, eot });
      const a = accuracy(base, res.xAdv, labels);
      res.xAdv.dispose();
      return a;
    };
    rates[name] = [await acc(1), await acc(20)];
  }
  for (const [name, [one, twenty]] of Object.entries(rates)) {
    // Measured: pgd 0.67 → 0.20, apgd-ce 0.77 → 0.27 (64 inputs).
    assert.ok(twenty < one - 0.3, `${name}: accuracy with eot 1 ${one}, with eot 20 ${twenty}`);
  }
  tf.dispose([x, y]);
});

function fakeBase(): Model {
  const w = [tf.tensor2d(new Rng(1).fillNormal(new Float32Array(12 * 6)), [12, 6]), tf.tensor2d(new Rng(2).fillNormal(new Float32Array(6 * 3)), [6, 3])];
  return {
    arch: 'fake',
    numClasses: 3,
    inputShape: [2, 2, 3],
    tapNames: ['h'],
    maskTap: 'h',
    params: [],
    forward(x) {
      const h = tf.relu(tf.matMul(tf.reshape(x, [x.shape[0], 12]) as tf.Tensor2D, w[0]));
      return { logits: tf.matMul(h, w[1]), taps: { h } };
    },
    dispose() {
      tf.dispose(w);
    },
  };
}

test('VIB and WRN with dropout offer a stochastic forward (replayable per seed); other models do not', () => {
  const vib = wrapVib(fakeBase(), { k: 4, samples: 3, beta: 1e-3 }, new Rng(7));
  const wrn = buildWrn(options({ numClasses: 4, inputShape: [8, 8, 3], depth: 10, widen: 1, dropout: 0.3 }), new Rng(5));
  const plain = buildWrn(options({ numClasses: 4, inputShape: [8, 8, 3], depth: 10, widen: 1, dropout: 0 }), new Rng(5));
  try {
    assert.equal(targetFromModel(fakeBase()).sampleLogits, undefined);
    assert.equal(targetFromModel(plain).sampleLogits, undefined);
    for (const [model, shape] of [
      [vib, [5, 2, 2, 3]],
      [wrn, [2, 8, 8, 3]],
    ] as const) {
      const t = targetFromModel(model);
      assert.ok(t.sampleLogits, model.arch);
      const stats = model.params.filter((p) => !p.trainable).map((p) => Array.from(p.variable.dataSync()));
      tf.tidy(() => {
        const size = (shape as readonly number[]).reduce((a, b) => a * b, 1);
        const x = tf.tensor4d(new Rng(9).fillUniform(new Float32Array(size), 0, 1), [...shape]);
        const ev = Array.from(t.logits(x).dataSync());
        assert.deepEqual(Array.from(t.logits(x).dataSync()), ev, 'the eval forward is deterministic');
        const a = Array.from(t.sampleLogits!(x, new Rng(1)).dataSync());
        const again = Array.from(t.sampleLogits!(x, new Rng(1)).dataSync());
        const b = Array.from(t.sampleLogits!(x, new Rng(2)).dataSync());
        assert.deepEqual(again, a, 'same generator state, same forward');
        assert.notDeepEqual(b, a, 'another seed, another forward');
        assert.notDeepEqual(a, ev, 'the sample is not the eval forward');
      });
      // BatchNorm stays in eval mode: running statistics untouched.
      assert.deepEqual(model.params.filter((p) => !p.trainable).map((p) => Array.from(p.variable.dataSync())), stats);
    }
  } finally {
    vib.dispose();
    wrn.dispose();
    plain.dispose();
  }
});
