// The black-box check runs Square only on what the white-box checks left (AutoAttack's order).
// Checked on the golden MLP with a chosen set of white-box survivors: at a budget too small to
// change any prediction, exactly those survive (Square run on every example would keep them
// all); at a large one it fools some of them, and that is a warning.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Diagnosis } from '../../src/diagnostics';
import { blackBoxCheck } from '../../src/diagnostics/checks/black-box';
import { accuracy } from '../../src/diagnostics/diagnosis';
import type { Batch } from '../../src/data';
import { disposeReference, ownLabelBatch, readReference, referenceSetup, type ReferenceSetup } from '../attacks/helpers';

const R = readReference('reference.json');
let s: ReferenceSetup;
let batch: Batch;
before(async () => {
  s = await referenceSetup(R);
  batch = await ownLabelBatch(s);
});
after(() => disposeReference(s));

/** The check with the first `left` examples as the white-box survivors. */
async function runWith(eps: number, left: number) {
  const d = new Diagnosis({ target: s.target, batches: [batch], eps, seed: 0 });
  const whiteBox = Array.from({ length: batch.n }, (_, i) => i < left);
  const out = await blackBoxCheck.run(d, { whiteBox, whiteBoxAcc: accuracy(whiteBox) });
  return { whiteBox, out, numbers: out.numbers as { square_attacked: number; fooled_only_by_square: number; white_box_then_square_acc: number } };
}

test('black box: Square attacks only the white-box survivors; nothing else survives it', async () => {
  const before = tf.memory().numTensors;
  const { whiteBox, out, numbers } = await runWith(1e-6, 3);
  assert.ok(batch.n > 3);
  assert.deepEqual(out.robust, whiteBox);
  assert.equal(numbers.square_attacked, 3);
  assert.equal(numbers.fooled_only_by_square, 0);
  assert.equal(numbers.white_box_then_square_acc, 3 / batch.n);
  assert.equal(out.status, 'pass');
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('black box: Square fooling a white-box survivor is a warning, counted among the survivors only', async () => {
  const { out, numbers } = await runWith(0.5, 3);
  assert.ok(out.robust!.slice(3).every((r) => !r), 'nothing outside the survivors survives');
  assert.ok(numbers.fooled_only_by_square > 0, 'Square fooled a survivor at ε = 0.5');
  assert.equal(numbers.square_attacked, 3);
  assert.equal(numbers.fooled_only_by_square + numbers.white_box_then_square_acc * batch.n, 3);
  assert.equal(out.status, 'warn');
});
