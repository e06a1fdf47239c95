// Each adversarial-training objective trains end to end with the IB terms and logs its parts;
// the loss a TRADES/MART step reports is exactly its formula on the model's two logit sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { train } from '../../src/jobs/train';
import { getObjective } from '../../src/train/objectives/registry';
import { tradesCodeLoss, martLoss } from '../../src/train/objectives/losses';
import { buildModel } from '../../src/models/registry';
import { makeIbTerms } from '../../src/ib/hooks';
import { UserError } from '../../src/errors';
import { tinyConfig } from '../helpers/configs';

for (const [method, extra] of [
  ['trades', { trades: { variant: 'ibrar-code' } }],
  ['trades', { trades: { variant: 'original' } }],
  ['mart', { mart: { beta: 6 } }],
] as const) {
  test(`${method} ${JSON.stringify(extra)} + IB trains and logs both passes' HSIC terms`, async () => {
    const before = tf.memory().numTensors;
    const res = await train({
      cfg: tinyConfig({
        train: { method, epochs: 1, attack: { steps: 2, eps: 0.05 }, ...extra },
        ib: { enabled: true, layers: ['fc1'], alpha: 0.01, beta: 0.1, yKernel: 'gaussian' },
      }),
    });
    const r = res.records[0];
    assert.ok(Number.isFinite(r.train_loss));
    for (const k of ['ib', 'hx/fc1', 'hy/fc1', 'adv/hx/fc1', 'adv/hy/fc1']) assert.ok(Number.isFinite(r[k]), `${k} logged`);
    assert.ok(method === 'mart' ? 'robust' in r && 'bce' in r : 'kl' in r);
    assert.equal(tf.memory().numTensors, before, 'no tensors left behind by a whole run');
  });
}

test('the TRADES and MART objectives compute their formula on the clean and adversarial logits, plus both IB passes', async () => {
  for (const method of ['trades', 'mart'] as const) {
    const cfg = tinyConfig({ train: { method }, ib: { enabled: true, layers: ['conv3'], alpha: 0.01, beta: 0.1, yKernel: 'gaussian' } });
    const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1));
    const rng = new Rng(2);
    const x = tf.tensor4d(rng.fillUniform(new Float32Array(16 * 8 * 8 * 3), 0, 1), [16, 8, 8, 3]);
    const xAdv = tf.tensor4d(rng.fillUniform(new Float32Array(16 * 8 * 8 * 3), 0, 1), [16, 8, 8, 3]);
    const y = tf.tensor1d(Int32Array.from({ length: 16 }, (_, i) => i % 4), 'int32');
    const yOneHot = tf.oneHot(y, 4).toFloat() as tf.Tensor2D;
    const ib = makeIbTerms(cfg.ib, model);
    const ctx = { cfg, model, x, y, yOneHot, rng, ib };
    const got = tf.tidy(() => getObjective(method).loss(ctx, { xAdv }).total.dataSync()[0]);
    // The objective's two train-mode forwards updated BN; recompute from the same starting point.
    const fresh = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1));
    const want = tf.tidy(() => {
      const nat = fresh.forward(x, { training: true });
      const adv = fresh.forward(xAdv, { training: true });
      const base = method === 'trades' ? tradesCodeLoss(nat.logits, adv.logits, yOneHot, 0.5) : martLoss(nat.logits, adv.logits, yOneHot, 0.5);
      const terms = makeIbTerms(cfg.ib, fresh);
      return base.loss.dataSync()[0] + terms(nat.taps, x, yOneHot, '').loss.dataSync()[0] + terms(adv.taps, x, yOneHot, 'adv/').loss.dataSync()[0];
    });
    assert.ok(Math.abs(got - want) <= 1e-4 * (1 + Math.abs(want)), `${method}: ${got} vs ${want}`);
    tf.dispose([x, xAdv, y, yOneHot]);
    model.dispose();
    fresh.dispose();
  }
});

test('an unknown training method is a config error naming the valid ones', () => {
  assert.throws(() => getObjective('fgsm-at'), (e: unknown) => e instanceof UserError && /pgd-at/.test((e as Error).message));
});

test("TRADES' own KL adversary stays in the ε-ball and [0,1], and raises the KL it maximises", async () => {
  const { craftTradesKl } = await import('../../src/train/adversary');
  const { klRows } = await import('../../src/train/objectives/losses');
  const cfg = tinyConfig();
  const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1));
  const rng = new Rng(4);
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(16 * 8 * 8 * 3), 0, 1), [16, 8, 8, 3]);
  const eps = 0.05;
  const xAdv = craftTradesKl(model, x, { eps, alpha: 0.01, steps: 5, randomStart: true }, new Rng(9));
  const [dist, lo, hi] = tf.tidy(() => [tf.max(tf.abs(tf.sub(xAdv, x))), tf.min(xAdv), tf.max(xAdv)].map((t) => t.dataSync()[0]));
  assert.ok(dist <= eps + 1e-6, `L∞ distance ${dist}`);
  // 5 sign steps of 0.01 reach the ε = 0.05 boundary wherever the (tiny) gradient keeps its sign.
  assert.ok(dist > 0.04, `the adversary moved: L∞ distance ${dist}`);
  assert.ok(lo >= 0 && hi <= 1);
  const kl = tf.tidy(() => {
    const nat = model.forward(x, { training: false }).logits;
    const adv = model.forward(xAdv, { training: false }).logits;
    return tf.mean(klRows(nat, tf.logSoftmax(adv))).dataSync()[0];
  });
  assert.ok(kl > 1e-7, `KL(p(x)‖p(x_adv)) = ${kl}`);
  tf.dispose([x, xAdv]);
  model.dispose();
});
