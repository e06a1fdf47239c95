// Golden vectors from the PyTorch reference (test/fixtures/golden/attacks.json): FGSM, PGD
// without random start, PGD from a given start, NI-FGSM on a tiny fixed MLP, and the CW
// margin f for both margins.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { fgsm } from '../../src/attacks/fgsm';
import { nifgsm } from '../../src/attacks/nifgsm';
import { pgd, pgdLinf } from '../../src/attacks/pgd';
import { cwF } from '../../src/attacks/cw';
import { oneHot } from '../../src/attacks/common';
import { flat, readGolden, worstRatio } from '../helpers/golden';
import { mlpTarget, nchwToNhwc, nhwcToNchwFlat } from './helpers';

const G = readGolden('attacks.json');
const shape = G.inputs.x_shape as [number, number, number, number];
const chw = shape.slice(1) as [number, number, number];
let target: ReturnType<typeof mlpTarget>;
let x: tf.Tensor4D;
let y: tf.Tensor1D;

function golden(name: string) {
  const c = G.cases.find((k: { name: string }) => k.name === name);
  assert.ok(c, `case ${name} in attacks.json`);
  return c;
}

function check(name: string, xAdv: tf.Tensor4D): void {
  const c = golden(name);
  const got = nhwcToNchwFlat(xAdv);
  const r = worstRatio(got, flat(c.expected.adv), c.tol.adv);
  assert.ok(r <= 1, `${name}: adv off by ${r.toFixed(2)}× the tolerance`);
  const logits = tf.tidy(() => target.logits(xAdv).dataSync());
  const rl = worstRatio(logits, flat(c.expected.adv_logits), c.tol.adv_logits);
  assert.ok(rl <= 1, `${name}: logits off by ${rl.toFixed(2)}× the tolerance`);
  const linf = tf.tidy(() => tf.max(tf.abs(tf.sub(xAdv, x))).dataSync()[0]);
  assert.ok(Math.abs(linf - c.expected.linf_from_x) < 1e-6, `${name}: L∞ ${linf} vs ${c.expected.linf_from_x}`);
}

before(async () => {
  await initBackend('wasm');
  target = mlpTarget(G.model.layers, chw);
  x = nchwToNhwc(flat(G.inputs.x), shape);
  y = tf.tensor1d(G.inputs.labels, 'int32');
});

after(() => {
  target.dispose();
  tf.dispose([x, y]);
});

test('the MLP target reproduces the clean logits (NCHW flattening)', () => {
  const logits = tf.tidy(() => target.logits(x).dataSync());
  assert.ok(worstRatio(logits, flat(G.inputs.clean_logits), { rtol: 1e-5, atol: 1e-5 }) <= 1);
});

test('FGSM matches the reference', async () => {
  const res = await fgsm.run({ target, rng: new Rng(0) }, x, y, { eps: golden('fgsm').params.eps });
  check('fgsm', res.xAdv);
  res.xAdv.dispose();
});

test('PGD without random start matches the reference (α = ε/steps·2.3 by default)', async () => {
  const p = golden('pgd_no_random_start').params;
  // No alpha given: the default rule must produce the reference's 0.0069.
  const res = await pgd.run({ target, rng: new Rng(0) }, x, y, { eps: p.eps, steps: p.steps, randomStart: false, restarts: 1 });
  check('pgd_no_random_start', res.xAdv);
  res.xAdv.dispose();
});

test('PGD from the given start matches the reference', async () => {
  const c = golden('pgd_given_start');
  const p = c.params;
  const noise = nchwToNhwc(flat(p.init_noise), shape);
  const start = tf.tidy(() => tf.clipByValue(tf.add(x, noise), 0, 1) as tf.Tensor4D);
  const yOh = oneHot(y, target.numClasses);
  const xAdv = await pgdLinf({ target }, x, yOh, { eps: p.eps, alpha: p.alpha, steps: p.steps, start });
  check('pgd_given_start', xAdv);
  tf.dispose([noise, start, yOh, xAdv]);
});

test('NI-FGSM matches the reference', async () => {
  const p = golden('nifgsm').params;
  const res = await nifgsm.run({ target, rng: new Rng(0) }, x, y, { eps: p.eps, alpha: p.alpha, steps: p.steps, decay: p.decay });
  check('nifgsm', res.xAdv);
  res.xAdv.dispose();
});

test('CW margin f: torchattacks quirk and the standard margin', () => {
  const u = G.cw_f_function_unit_case;
  const logits = tf.tensor2d(u.logits);
  const yOh = oneHot(tf.tensor1d(u.labels, 'int32'), logits.shape[1]);
  const fT = cwF(logits, yOh, u.kappa, 'torchattacks').dataSync();
  const fS = cwF(logits, yOh, u.kappa, 'standard').dataSync();
  assert.ok(worstRatio(fT, u.expected_f_torchattacks, { rtol: 1e-6, atol: 1e-6 }) <= 1, `torchattacks f ${Array.from(fT)}`);
  assert.ok(worstRatio(fS, u.expected_f_textbook, { rtol: 1e-6, atol: 1e-6 }) <= 1, `standard f ${Array.from(fS)}`);
  // The quirk rows really differ (else the test could not tell the margins apart).
  assert.ok(Math.abs(u.expected_f_torchattacks[0] - u.expected_f_textbook[0]) > 1e-3);
  tf.dispose([logits, yOh]);
});
