// The convergence check reads its whole accuracy-vs-steps curve off one traced PGD run. That is
// only right if a k-step PGD attack from the same random start returns the run's k-th iterate:
// checked here against the `pgd` attack itself on the golden MLP, at step counts where the
// number of examples still correct differs (so agreement is not a coincidence of all-or-none).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { getAttack } from '../../src/attacks/registry';
import { tracedPgd } from '../../src/diagnostics/pgd-trace';
import { Diagnosis } from '../../src/diagnostics';
import { convergenceCheck } from '../../src/diagnostics/checks/convergence';
import type { AttackTarget } from '../../src/attacks/types';
import { disposeReference, ownLabelBatch, readReference, referenceSetup, type ReferenceSetup } from '../attacks/helpers';

const R = readReference('reference.json');
let s: ReferenceSetup;
before(async () => (s = await referenceSetup(R)));
after(() => disposeReference(s));

async function correctUnder(xAdv: tf.Tensor4D, labels: Int32Array): Promise<boolean[]> {
  const pred = tf.tidy(() => tf.argMax(s.target.logits(xAdv), 1));
  const p = await pred.data();
  pred.dispose();
  return Array.from(p, (v, i) => v === labels[i]);
}

test('traced PGD: correct[k] is what a k-step pgd attack from the same start returns', async () => {
  const labels = Int32Array.from(R.labels as number[]);
  const eps = 0.02;
  const alpha = eps / 4;
  const steps = 12;
  const before = tf.memory().numTensors;
  const trace = await tracedPgd(s.target, s.x, s.y, labels, { eps, alpha, steps }, new Rng(7), async () => {});
  assert.equal(tf.memory().numTensors, before);
  assert.equal(trace.correct.length, steps + 1);
  assert.deepEqual(trace.correct[steps], trace.finalCorrect);
  const counts: number[] = [];
  for (const k of [1, 2, 4, 8, 12]) {
    const res = await getAttack('pgd').run({ target: s.target, rng: new Rng(7) }, s.x, s.y, { eps, alpha, steps: k } as never);
    const got = await correctUnder(res.xAdv, labels);
    res.xAdv.dispose();
    assert.deepEqual(trace.correct[k], got, `step ${k}`);
    counts.push(got.filter(Boolean).length);
  }
  // Not all the same: the curve has something to agree on.
  assert.ok(new Set(counts).size > 1, `correct counts ${counts.join(', ')}`);
});

test('convergence check: the traced run is the first of the 10 restarts, so nothing is attacked again once it fooled all', async () => {
  const batch = await ownLabelBatch(s);
  const n = batch.n;
  // Every image row the model sees, counted (work, not time).
  let rows = 0;
  const counting: AttackTarget = { numClasses: s.target.numClasses, logits: (x) => ((rows += x.shape[0]), s.target.logits(x)) };
  const d = new Diagnosis({ target: counting, batches: [batch], eps: 0.5, seed: 0 });
  const out = await convergenceCheck.run(d, { whiteBox: null, whiteBoxAcc: null });
  const curve = out.numbers.curve as Array<{ steps: number; acc: number }>;
  assert.equal(curve[curve.length - 1].acc, 0, 'the traced 200-step run fooled every example');
  assert.equal(out.numbers.restarts_acc, 0);
  // The clean predictions (n rows), then the trace: a forward at the start and after each of
  // its 200 steps, plus one gradient forward per step. Fresh restarts would add 200·n or more.
  assert.equal(rows, n + n * (1 + 2 * 200));
});
