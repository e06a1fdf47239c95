// CW-L2's binary search over c (Carlini & Wagner 2017): agreement with the PyTorch
// implementation of the same procedure (fixtures/make-reference-aa.py), more binary steps never
// lose an example's distance, and the search fools examples that its starting c alone misses.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { cw, cwBinarySearch } from '../../src/attacks/cw';
import { gatherRows } from '../../src/attacks/common';
import { flat, worstRatio } from '../helpers/golden';
import { disposeReference, maxGap, mlpTarget, nhwcToNchwFlat, readReference, referenceSetup } from './helpers';

const R = readReference('reference-aa.json');
let target: ReturnType<typeof mlpTarget>;
let x: tf.Tensor4D;
let y: tf.Tensor1D;

before(async () => ({ target, x, y } = await referenceSetup(R)));
after(() => disposeReference({ target, x, y }));

for (const [i, ref] of (R.cw_search as { params: Record<string, number> }[]).entries()) {
  test(`binary search matches the PyTorch reference, setting ${i}`, async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const r = ref as any;
    const xs = gatherRows(x, R.cw_rows);
    const ys = tf.tensor1d(R.cw_rows.map((j: number) => R.labels[j]), 'int32');
    const p = cw.paramsSchema.parse({ ...r.params, margin: 'torchattacks' });
    const res = await cwBinarySearch({ target }, xs, ys, p);
    assert.ok(worstRatio(res.c, r.c_final, { rtol: 1e-6, atol: 0 }) <= 1, `final c ${Array.from(res.c)}`);
    assert.ok(worstRatio(res.bestL2Sq, r.best_l2, { rtol: 1e-3, atol: 1e-6 }) <= 1, `best L2 ${Array.from(res.bestL2Sq)}`);
    const gap = maxGap(nhwcToNchwFlat(res.xAdv), flat(r.best_adv));
    assert.ok(gap < 1e-4, `best_adv differs by ${gap}`);
    const pred = Array.from(tf.tidy(() => tf.argMax(target.logits(res.xAdv), 1).dataSync()));
    assert.deepEqual(pred, r.adv_pred);
    tf.dispose([xs, ys, res.xAdv]);
  });
}

test('more binary steps never increase a distance; the search fools what its first c misses', async () => {
  const run = async (params: Record<string, unknown>) => {
    const res = await cw.run({ target, rng: new Rng(0) }, x, y, params);
    res.xAdv.dispose();
    return Array.from(res.distances!);
  };
  // Fixed c = 1e-4 is too weak for most examples; the search starts there and raises c ×10.
  const fixed = await run({ c: 1e-4, steps: 30, lr: 0.05 });
  const few = await run({ binarySteps: 2, initialC: 1e-4, steps: 30, lr: 0.05 });
  const many = await run({ binarySteps: 6, initialC: 1e-4, steps: 30, lr: 0.05 });
  for (let i = 0; i < many.length; i++) {
    assert.ok(few[i] <= fixed[i], `example ${i}: 2 steps ${few[i]} > fixed c ${fixed[i]}`);
    assert.ok(many[i] <= few[i], `example ${i}: 6 steps ${many[i]} > 2 steps ${few[i]}`);
  }
  const fooled = (d: number[]) => d.filter((v) => Number.isFinite(v)).length;
  assert.ok(fooled(many) > fooled(fixed), `search fooled ${fooled(many)}, fixed c ${fooled(fixed)}`);
  assert.ok(many.some((d, i) => d < few[i]), 'later steps must also shorten some distance');
});
