// Agreement with the reference implementations on the golden tiny MLP, using outputs made by
// fixtures/make_reference.py: AutoAttack's FAB / FAB-T (deterministic with one restart), APGD
// CE / DLR / targeted DLR from a given start, Square with the same scripted random draws, and
// torchattacks-semantics CW-L2 (cost trace, early-stop step, best iterates).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { fab } from '../../src/attacks/fab';
import { fabT } from '../../src/attacks/fab-t';
import { apgdSingleRun, type ApgdLoss } from '../../src/attacks/apgd-core';
import { square } from '../../src/attacks/square';
import { cwL2 } from '../../src/attacks/cw';
import { gatherRows } from '../../src/attacks/common';
import { flat, worstRatio } from '../helpers/golden';
import { disposeReference, maxGap, mlpTarget, nchwToNhwc, nhwcToNchwFlat, readReference, referenceSetup } from './helpers';

const R = readReference('reference.json');
const shape: [number, number, number, number] = [R.labels.length, 3, 4, 4];
let target: ReturnType<typeof mlpTarget>;
let x: tf.Tensor4D;
let y: tf.Tensor1D;

before(async () => ({ target, x, y } = await referenceSetup(R)));
after(() => disposeReference({ target, x, y }));

function predOf(t: tf.Tensor4D): number[] {
  return Array.from(tf.tidy(() => tf.argMax(target.logits(t), 1).dataSync()));
}

test('FAB (untargeted) matches AutoAttack, and results beyond ε are discarded', async () => {
  const ref = R.fab;
  const res = await fab.run({ target, rng: new Rng(0) }, x, y, { eps: ref.params.eps, steps: ref.params.steps, restarts: ref.params.restarts });
  const gap = maxGap(nhwcToNchwFlat(res.xAdv), flat(ref.adv));
  assert.ok(gap < 1e-5, `FAB output differs from AutoAttack by ${gap}`);
  assert.deepEqual(predOf(res.xAdv), ref.adv_pred);
  res.xAdv.dispose();

  // ε only decides, at the end, which results are kept: with ε = 0.03 the farther ones revert to x.
  const small = await fab.run({ target, rng: new Rng(0) }, x, y, { eps: 0.03, steps: 10 });
  const got = nhwcToNchwFlat(small.xAdv);
  const clean = flat(R.x);
  const d = 48;
  let reverted = 0;
  ref.linf.forEach((l: number, i: number) => {
    const want = l <= 0.03 ? flat(ref.adv).slice(i * d, (i + 1) * d) : clean.slice(i * d, (i + 1) * d);
    if (l > 0.03) reverted++;
    assert.ok(maxGap(got.slice(i * d, (i + 1) * d), want) < 1e-5, `example ${i} (L∞ ${l})`);
  });
  assert.ok(reverted >= 2, 'the case must exercise the ε cut');
  small.xAdv.dispose();
});

test('FAB-T matches AutoAttack (targets: ranks 2..5 of the clean logits)', async () => {
  const ref = R.fab_t;
  const res = await fabT.run({ target, rng: new Rng(0) }, x, y, ref.params);
  const gap = maxGap(nhwcToNchwFlat(res.xAdv), flat(ref.adv));
  assert.ok(gap < 1e-5, `FAB-T output differs from AutoAttack by ${gap}`);
  assert.deepEqual(predOf(res.xAdv), ref.adv_pred);
  res.xAdv.dispose();
});

for (const loss of ['ce', 'dlr', 'dlr-targeted'] as ApgdLoss[]) {
  test(`APGD (${loss}) from a given start matches AutoAttack's attack_single_run`, async () => {
    const ref = R[`apgd_${loss.replace('-', '_')}`];
    const start = nchwToNhwc(flat(ref.start), shape);
    const run = await apgdSingleRun(
      { target, rng: new Rng(0) },
      x,
      Int32Array.from(R.labels),
      loss === 'dlr-targeted' ? Int32Array.from(R.apgd_targets) : null,
      { eps: ref.params.eps, steps: ref.params.steps, rho: ref.params.rho, restarts: 1, loss },
      start,
    );
    // Examples whose reference float32 and float64 runs disagree (round-off decides their
    // path: DLR's flat region) are not compared; the runs are per-example independent.
    const keep: number[] = ref.reproducible.flatMap((ok: boolean, i: number) => (ok ? [i] : []));
    assert.ok(keep.length >= 8);
    const d = 48;
    const rows = (v: ArrayLike<number>) => keep.flatMap((i) => Array.from(v).slice(i * d, (i + 1) * d));
    const gAdv = maxGap(rows(nhwcToNchwFlat(run.xAdv)), rows(flat(ref.x_best_adv)));
    const gBest = maxGap(rows(nhwcToNchwFlat(run.xBest)), rows(flat(ref.x_best)));
    assert.ok(gAdv < 1e-5, `x_best_adv differs by ${gAdv}`);
    assert.ok(gBest < 1e-5, `x_best differs by ${gBest}`);
    assert.deepEqual(keep.map((i) => run.fooled[i]), keep.map((i) => ref.fooled[i]));
    const lb = keep.map((i) => run.lossBest[i]);
    assert.ok(worstRatio(lb, keep.map((i) => ref.loss_best[i]), { rtol: 1e-4, atol: 1e-5 }) <= 1, `loss_best ${lb}`);
    tf.dispose([start, run.xAdv, run.xBest]);
  });
}

test('Square matches AutoAttack given the same random draws (queries counted alike)', async () => {
  const ref = R.square;
  const stream: number[] = R.square_stream;
  let k = 0;
  const scripted = {
    next: () => {
      assert.ok(k < stream.length, 'more draws than the reference made');
      return stream[k++];
    },
  } as unknown as Rng;
  const res = await square.run({ target, rng: scripted }, x, y, ref.params);
  assert.equal(k, ref.draws_used);
  assert.equal(res.queries, ref.queries_total);
  const gap = maxGap(nhwcToNchwFlat(res.xAdv), flat(ref.adv));
  assert.ok(gap < 1e-6, `Square output differs by ${gap}`);
  assert.deepEqual(predOf(res.xAdv), ref.adv_pred);
  res.xAdv.dispose();
});

for (const [i, ref] of (R.cw as { params: { c: number; kappa: number; steps: number; lr: number } }[]).entries()) {
  test(`CW-L2 (torchattacks margin, frozen saturated pixels) matches the reference, setting ${i}`, async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const r = ref as any;
    const xs = gatherRows(x, R.cw_rows);
    const ys = tf.tensor1d(R.cw_rows.map((j: number) => R.labels[j]), 'int32');
    const run = await cwL2({ target }, xs, ys, { ...r.params, margin: 'torchattacks' }, { trace: true });
    assert.equal(run.stoppedAt, r.early_stop_step, 'early-stop step');
    assert.ok(worstRatio(run.costTrace!, r.cost_trace, { rtol: 1e-4, atol: 1e-5 }) <= 1, `cost trace ${run.costTrace}`);
    assert.ok(worstRatio(run.bestL2Sq, r.best_l2, { rtol: 1e-3, atol: 1e-6 }) <= 1, `best L2 ${Array.from(run.bestL2Sq)}`);
    const gap = maxGap(nhwcToNchwFlat(run.xAdv), flat(r.best_adv));
    assert.ok(gap < 1e-4, `best_adv differs by ${gap}`);
    assert.deepEqual(predOf(run.xAdv), r.adv_pred);
    tf.dispose([xs, ys, run.xAdv]);
  });
}
