// The gradient-masking diagnostics on constructed cases: a normally trained CE model passes
// every check and falls to ≤ 1 % at large ε; the same model behind a hard threshold (a
// zero-gradient layer) or a randomised input quantiser is flagged suspect by the checks made
// for them, with the zeroing layer named.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { testBatches, sliceSplit } from '../../src/data';
import { train } from '../../src/jobs/train';
import { openRun, type OpenedRun } from '../../src/jobs/open-run';
import { runDiagnostics, type DiagnosisInput } from '../../src/diagnostics';
import type { ForwardOptions } from '../../src/models/types';
import type { AttackTarget } from '../../src/attacks/types';
import { tinyConfig } from '../helpers/configs';

// Large enough for this synthetic task that an undefended model falls (its classes sit far apart).
const EPS = 0.2;
const N = 128;
let run: OpenedRun;
let surrogate: OpenedRun;

function cfg(seed: number) {
  return tinyConfig({ seed, train: { epochs: 4 }, data: { synthetic: { trainSize: 512, testSize: 256 } } });
}

before(async () => {
  const a = await train({ cfg: cfg(3) });
  const b = await train({ cfg: cfg(4) });
  run = await openRun({ kind: 'existing', runDir: a.runDir, checkpoint: 'last' });
  surrogate = await openRun({ kind: 'existing', runDir: b.runDir, checkpoint: 'last' });
});

after(() => {
  run.dispose();
  surrogate.dispose();
});

/** The run's model with `wrap` applied to one tap (on top of whatever tap hook the caller passes). */
function input(wrap?: (name: string, t: tf.Tensor) => tf.Tensor): DiagnosisInput {
  const model = run.model;
  const forward = (x: tf.Tensor4D, o: ForwardOptions) =>
    model.forward(x, {
      ...o,
      tapHook: (name, t) => {
        const u = wrap ? wrap(name, t) : t;
        return o.tapHook ? o.tapHook(name, u) : u;
      },
    });
  const target: AttackTarget = { numClasses: model.numClasses, logits: (x) => tf.tidy(() => forward(x, { training: false }).logits) };
  return {
    target,
    batches: [...testBatches(sliceSplit(run.dataset.test, 0, N), 64)],
    eps: EPS,
    seed: 0,
    surrogate: surrogate.target(),
    model: { forward, tapNames: model.tapNames },
  };
}

const byId = (s: Awaited<ReturnType<typeof runDiagnostics>>, id: string) => s.checks.find((c) => c.id === id)!;

test('a normally trained CE model passes every check and falls to ≤ 1 % at ε = 64/255', { timeout: 600_000 }, async () => {
  const before = tf.memory().numTensors;
  const s = await runDiagnostics(input());
  assert.ok(s.clean_acc > 0.9, `clean ${s.clean_acc}`);
  for (const c of s.checks) assert.notEqual(c.status, 'warn', s.checks.map((k) => `${k.id}: ${k.status}: ${k.summary}`).join('\n'));
  assert.equal(s.line, 'robustness claim: supported');
  const sweep = byId(s, 'eps-sweep').numbers as { curve: Array<{ eps: number; acc: number }>; unbounded_acc: number };
  assert.ok(sweep.curve.find((c) => Math.abs(c.eps - 64 / 255) < 1e-12)!.acc <= 0.01);
  assert.equal(sweep.unbounded_acc, 0);
  assert.equal(byId(s, 'adaptive').status, 'skip', 'no IB terms: no adaptive attack');
  assert.equal(byId(s, 'transfer').status, 'pass');
  assert.ok(s.worst_case_acc <= (byId(s, 'convergence').numbers.converged_acc as number));
  // Square found nothing the white-box attacks missed (test/diagnostics/black-box.test.ts
  // checks that it attacks only what they left).
  assert.equal(byId(s, 'black-box-vs-white-box').numbers.fooled_only_by_square, 0);
  assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
});

test('a hard-thresholded layer (zero gradients) is suspect: gradient health names it, the ε sweep does not reach 0', { timeout: 600_000 }, async () => {
  // A step function after conv2: the forward is fine, the gradient through it is zero.
  const threshold = (name: string, t: tf.Tensor) => (name === 'conv2' ? tf.relu(tf.sign(tf.sub(t, 0.05))) : t);
  const s = await runDiagnostics(input(threshold));
  assert.match(s.line, /^robustness claim: suspect \(/);
  const g = byId(s, 'gradient-health');
  assert.equal(g.status, 'warn');
  assert.equal(g.numbers.zero_gradient, N);
  assert.deepEqual(Object.keys(g.numbers.zeroed_at as object), ['conv2 (the layers between conv1 and conv2)']);
  assert.equal(byId(s, 'eps-sweep').status, 'warn');
  const bb = byId(s, 'black-box-vs-white-box');
  assert.ok(s.warned.includes('black-box-vs-white-box'), bb.summary);
  assert.ok((bb.numbers.fooled_only_by_square as number) > 0.002 * N, bb.summary);
});

test('a randomised input quantiser is suspect: gradient health sees two forwards differ', { timeout: 600_000 }, async () => {
  // Dithered quantisation of the input to 8 levels, with fresh noise in every forward.
  const quantise = (name: string, t: tf.Tensor) => t;
  const base = input(quantise);
  const model = run.model;
  const dither = (x: tf.Tensor4D) => tf.div(tf.floor(tf.add(tf.mul(x, 8), tf.randomUniform(x.shape))), 8) as tf.Tensor4D;
  const forward = (x: tf.Tensor4D, o: ForwardOptions) => model.forward(dither(x), o);
  const s = await runDiagnostics({
    ...base,
    target: { numClasses: model.numClasses, logits: (x) => tf.tidy(() => forward(x, { training: false }).logits) },
    model: { forward, tapNames: model.tapNames },
  });
  assert.match(s.line, /^robustness claim: suspect \(/);
  const g = byId(s, 'gradient-health');
  assert.equal(g.status, 'warn');
  assert.equal(g.numbers.randomised, true);
});
