import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { martLoss, tradesCodeLoss, tradesOriginalLoss, type LossParts } from '../../src/train/objectives/losses';
import { flat, readGolden, worstRatio } from '../helpers/golden';

const golden = readGolden('adv_losses.json');

type LossFn = (nat: tf.Tensor2D, adv: tf.Tensor2D, y: tf.Tensor2D) => LossParts;
const cases: Record<string, { fn: LossFn; parts: Record<string, string> }> = {
  'trades_ibrar_code_beta0.5': { fn: (n, a, y) => tradesCodeLoss(n, a, y, 0.5), parts: { ce_adv: 'ce_adv', kl_batchmean: 'kl' } },
  trades_original_beta6: { fn: (n, a, y) => tradesOriginalLoss(n, a, y, 6), parts: { ce_nat: 'ce_nat', kl_batchmean: 'kl' } },
  'mart_ibrar_code_beta0.5': { fn: (n, a, y) => martLoss(n, a, y, 0.5), parts: { bce_term: 'bce', robust_term: 'robust' } },
  mart_original_beta6: { fn: (n, a, y) => martLoss(n, a, y, 6), parts: { bce_term: 'bce', robust_term: 'robust' } },
};

for (const backend of ['wasm', 'cpu'] as const) {
  for (const c of golden.cases) {
    for (const [key, spec] of Object.entries(cases)) {
      test(`${key} matches the PyTorch golden (${c.name}, ${backend})`, async () => {
        await initBackend(backend);
        const want = c.expected[key];
        const tol = c.tol[key];
        const before = tf.memory().numTensors;
        tf.tidy(() => {
          const nat = tf.tensor2d(c.inputs.logits_nat);
          const adv = tf.tensor2d(c.inputs.logits_adv);
          const y = tf.oneHot(tf.tensor1d(c.inputs.labels, 'int32'), nat.shape[1]).toFloat() as tf.Tensor2D;
          const { loss, parts } = spec.fn(nat, adv, y);
          assert.ok(worstRatio([loss.dataSync()[0]], [want.loss], tol.loss) <= 1, `loss ${loss.dataSync()[0]} vs ${want.loss}`);
          for (const [gk, ours] of Object.entries(spec.parts)) {
            assert.ok(worstRatio([parts[ours].dataSync()[0]], [want.parts[gk]], tol.loss) <= 1, `${gk}: ${parts[ours].dataSync()[0]} vs ${want.parts[gk]}`);
          }
          const grads = tf.grads((n: tf.Tensor, a: tf.Tensor) => spec.fn(n as tf.Tensor2D, a as tf.Tensor2D, y).loss)([nat, adv]);
          assert.ok(worstRatio(grads[0].dataSync(), flat(want.grad_logits_nat), tol.grads) <= 1, 'grad wrt natural logits');
          assert.ok(worstRatio(grads[1].dataSync(), flat(want.grad_logits_adv), tol.grads) <= 1, 'grad wrt adversarial logits');
        });
        assert.equal(tf.memory().numTensors, before, 'no tensors leaked');
      });
    }
  }
}

test('a wrong β is rejected by the same tolerance (the test discriminates)', async () => {
  await initBackend('wasm');
  const c = golden.cases[0];
  tf.tidy(() => {
    const nat = tf.tensor2d(c.inputs.logits_nat);
    const adv = tf.tensor2d(c.inputs.logits_adv);
    const y = tf.oneHot(tf.tensor1d(c.inputs.labels, 'int32'), nat.shape[1]).toFloat() as tf.Tensor2D;
    const got = martLoss(nat, adv, y, 6).loss.dataSync()[0];
    assert.ok(worstRatio([got], [c.expected['mart_ibrar_code_beta0.5'].loss], c.tol['mart_ibrar_code_beta0.5'].loss) > 1);
  });
});
