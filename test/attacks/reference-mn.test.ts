// Agreement with the reference implementations on the golden tiny MLP, using outputs made by
// fixtures/make-reference-mn.py: FMN L∞/L2/L1 (the authors' fmn.py), DeepFool, MI-FGSM and
// DI-FGSM (torchattacks 3.3.0; DI-FGSM with the same scripted random draws). Only the
// examples whose float32 and float64 reference runs agree are compared (all of them in the
// current fixture); the maximal deviation is reported as a test diagnostic.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { fmn } from '../../src/attacks/fmn';
import { deepfool } from '../../src/attacks/deepfool';
import { mifgsm } from '../../src/attacks/mifgsm';
import { difgsm } from '../../src/attacks/difgsm';
import { flat } from '../helpers/golden';
import { disposeReference, mlpTarget, nhwcToNchwFlat, readReference, referenceSetup } from './helpers';

const R = readReference('reference-mn.json');
const m = R.labels.length as number;
const D = 48;
let target: ReturnType<typeof mlpTarget>;
let x: tf.Tensor4D;
let y: tf.Tensor1D;

/** Pixel tolerance (float32 vs PyTorch float32: different summation orders). */
const TOL = 1e-5;

before(async () => ({ target, x, y } = await referenceSetup(R)));
after(() => disposeReference({ target, x, y }));

/** Largest |got − want| over the reproducible examples' pixels (NCHW order). */
function rowGap(got: tf.Tensor4D, want: number[], reproducible: boolean[]): number {
  const g = nhwcToNchwFlat(got);
  let gap = 0;
  for (let i = 0; i < m; i++) {
    if (!reproducible[i]) continue;
    for (let j = i * D; j < (i + 1) * D; j++) gap = Math.max(gap, Math.abs(g[j] - want[j]));
  }
  return gap;
}

function predOf(t: tf.Tensor4D): number[] {
  return Array.from(tf.tidy(() => tf.argMax(target.logits(t), 1).dataSync()));
}

for (const ref of R.fmn as { params: Record<string, unknown> & { norm: 'Linf' | 'L2' | 'L1' }; adv: unknown; adv_pred: number[]; dist: (number | null)[]; reproducible: boolean[] }[]) {
  test(`FMN ${ref.params.norm} matches the authors' code (points and minimal norms)`, async (t) => {
    const ok = ref.reproducible;
    const res = await fmn.run({ target, rng: new Rng(0) }, x, y, ref.params);
    const gap = rowGap(res.xAdv, flat(ref.adv), ok);
    const all = rowGap(res.xAdv, flat(ref.adv), ok.map(() => true));
    t.diagnostic(`max pixel deviation ${gap.toExponential(2)} on ${ok.filter(Boolean).length} reproducible rows (${all.toExponential(2)} on all ${m})`);
    assert.ok(gap < TOL, `FMN ${ref.params.norm} output differs by ${gap}`);
    const pred = predOf(res.xAdv);
    let dGap = 0;
    ref.dist.forEach((want, i) => {
      if (!ok[i]) return;
      assert.equal(pred[i], ref.adv_pred[i], `row ${i} prediction`);
      const got = res.distances![i];
      if (want === null) assert.equal(got, Infinity, `row ${i}: the reference found nothing`);
      else dGap = Math.max(dGap, Math.abs(got - want));
    });
    t.diagnostic(`max distance deviation ${dGap.toExponential(2)}`);
    assert.ok(dGap < TOL, `distances differ by ${dGap}`);
    res.xAdv.dispose();

    // eps keeps only the rows found within it; the others come back as x; distances unchanged.
    const found = ref.dist.filter((v, i): v is number => ok[i] && v !== null && v > 0).sort((a, b) => a - b);
    const eps = (found[0] + found[1]) / 2;
    const cut = await fmn.run({ target, rng: new Rng(0) }, x, y, { ...ref.params, eps });
    const got = nhwcToNchwFlat(cut.xAdv);
    const clean = flat(R.x);
    const adv = flat(ref.adv);
    let reverted = 0;
    ref.dist.forEach((d, i) => {
      assert.equal(cut.distances![i], res.distances![i]);
      if (!ok[i]) return;
      const want = d !== null && d <= eps ? adv : clean;
      if (d !== null && d > eps) reverted++;
      for (let j = i * D; j < (i + 1) * D; j++) assert.ok(Math.abs(got[j] - want[j]) < TOL, `eps cut, row ${i}`);
    });
    assert.ok(reverted >= 2, 'the case must exercise the eps cut');
    cut.xAdv.dispose();
  });
}

test('DeepFool matches torchattacks 3.3.0 (last iterates, L2 distances of the fooled rows)', async (t) => {
  const ref = R.deepfool;
  const res = await deepfool.run({ target, rng: new Rng(0) }, x, y, ref.params);
  const gap = rowGap(res.xAdv, flat(ref.adv), ref.reproducible);
  t.diagnostic(`max pixel deviation ${gap.toExponential(2)}`);
  assert.ok(gap < TOL, `DeepFool output differs by ${gap}`);
  // Rows that stall on the boundary (clipping eats the overshoot) end in a tie whose label is
  // round-off: their points are compared above, their labels not.
  const pred = predOf(res.xAdv);
  let dGap = 0;
  (ref.l2 as number[]).forEach((want, i) => {
    const got = res.distances![i];
    if (pred[i] === R.labels[i]) assert.equal(got, Infinity, `row ${i} is not fooled`);
    else dGap = Math.max(dGap, Math.abs(got - want));
    if (!ref.tie[i]) assert.equal(pred[i], ref.adv_pred[i], `row ${i} prediction`);
  });
  t.diagnostic(`${(ref.tie as boolean[]).filter(Boolean).length} of ${m} rows end on a tie`);
  t.diagnostic(`max distance deviation ${dGap.toExponential(2)}`);
  assert.ok(dGap < TOL);
  res.xAdv.dispose();
});

for (const [k, ref] of (R.mifgsm as { params: Record<string, number>; adv: unknown; reproducible: boolean[] }[]).entries()) {
  test(`MI-FGSM case ${k} matches torchattacks 3.3.0 (no surrogate: white-box)`, async (t) => {
    const res = await mifgsm.run({ target, rng: new Rng(0) }, x, y, ref.params);
    const gap = rowGap(res.xAdv, flat(ref.adv), ref.reproducible);
    t.diagnostic(`max pixel deviation ${gap.toExponential(2)}`);
    assert.ok(gap < TOL, `MI-FGSM output differs by ${gap}`);
    res.xAdv.dispose();
  });
}

for (const [k, ref] of (R.difgsm as { params: Record<string, number>; stream: number[]; adv: unknown; reproducible: boolean[] }[]).entries()) {
  test(`DI-FGSM case ${k} matches torchattacks 3.3.0 with the same resize/pad draws`, async (t) => {
    let pos = 0;
    const scripted = {
      next: () => {
        assert.ok(pos < ref.stream.length, 'more draws than the reference made');
        return ref.stream[pos++];
      },
    } as unknown as Rng;
    const p = ref.params;
    const params = { eps: p.eps, alpha: p.alpha, steps: p.steps, decay: p.decay, resizeRate: p.resize_rate, diversityProb: p.diversity_prob };
    const res = await difgsm.run({ target, rng: scripted }, x, y, params);
    assert.equal(pos, ref.stream.length);
    const gap = rowGap(res.xAdv, flat(ref.adv), ref.reproducible);
    t.diagnostic(`max pixel deviation ${gap.toExponential(2)}`);
    assert.ok(gap < TOL, `DI-FGSM output differs by ${gap}`);
    res.xAdv.dispose();
  });
}
