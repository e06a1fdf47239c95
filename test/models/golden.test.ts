// Every architecture against PyTorch (test/models/make_golden.py, float64): same parameter
// names and PyTorch shapes, same trainable count, and — with the same closed-form weights —
// the same eval logits and taps, masked logits, train-mode logits, running statistics after
// one train forward, and gradients of sum(logits·R) w.r.t. the input and parameters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import type { Model, NamedParam } from '../../src/models/types';
import { buildVgg16 } from '../../src/models/vgg16';
import { buildResnet18 } from '../../src/models/resnet18';
import { buildWrn } from '../../src/models/wrn';
import { buildSmallCnn } from '../../src/models/small-cnn';
import { countTrainable } from '../../src/models/params';
import {
  TapSummary,
  assertClose,
  assertSummaryClose,
  formulaInput,
  formulaUpstream,
  options,
  setFormulaParams,
  summarize,
  toTorchLayout,
  torchShape,
} from './helpers';

interface GoldenCase {
  case: {
    arch: string;
    width?: number;
    depth?: number;
    widen?: number;
    inputShape: [number, number, number];
    batch: number;
    numClasses: number;
    maskTap: string;
    maskChannels: { channels: number; zero: number[] };
  };
  params: { name: string; shape: number[] }[];
  trainableCount: number;
  observedF32Gap: number;
  eval: { logits: number[][]; taps: Record<string, TapSummary> };
  evalMasked: { logits: number[][]; maskTap: TapSummary };
  train: {
    logits: number[][];
    taps: Record<string, TapSummary>;
    running: Record<string, { running_mean: number[]; running_var: number[] }>;
    inputGrad: TapSummary;
    paramGrads: Record<string, { head: number[]; sum: number; sumsq: number }>;
  };
}

const golden = JSON.parse(
  fs.readFileSync(path.join(__dirname, '..', '..', '..', 'test', 'models', 'golden_models.json'), 'utf8'),
) as { cases: GoldenCase[] };

function build(c: GoldenCase['case']): Model {
  const opts = options({
    numClasses: c.numClasses,
    inputShape: c.inputShape,
    width: c.width ?? 1,
    depth: c.depth ?? 28,
    widen: c.widen ?? 10,
  });
  const rng = new Rng(1);
  switch (c.arch) {
    case 'vgg16':
      return buildVgg16(opts, rng);
    case 'resnet18':
      return buildResnet18(opts, rng);
    case 'wrn':
      return buildWrn(opts, rng);
    case 'small-cnn':
      return buildSmallCnn(opts, rng);
    default:
      throw new Error(c.arch);
  }
}

/** Allowed error relative to the size of the values: ≥ 10× what PyTorch's own float32 shows. */
function tolerance(g: GoldenCase): number {
  return Math.max(3e-4, 10 * g.observedF32Gap);
}

function checkTaps(label: string, got: Record<string, tf.Tensor>, want: Record<string, TapSummary>, rel: number): void {
  assert.deepEqual(Object.keys(got), Object.keys(want), `${label}: tap names`);
  for (const [name, w] of Object.entries(want)) assertSummaryClose(`${label} ${name}`, summarize(got[name]), w, rel);
}

function byName(model: Model): Map<string, NamedParam> {
  return new Map(model.params.map((p) => [p.name, p]));
}

function checkForward(g: GoldenCase): void {
  const c = g.case;
  const model = build(c);
  try {
    // Names and PyTorch shapes equal the reference state_dict (num_batches_tracked aside).
    const mine = model.params.map((p) => ({ name: p.name, shape: torchShape(p) }));
    const sortByName = (a: { name: string }, b: { name: string }): number => (a.name < b.name ? -1 : 1);
    assert.deepEqual([...mine].sort(sortByName), [...g.params].sort(sortByName));
    assert.equal(countTrainable(model.params), g.trainableCount);
    assert.equal(model.maskTap, c.maskTap);

    const rel = tolerance(g);
    setFormulaParams(model);
    const x = formulaInput(c.batch, ...c.inputShape);
    tf.tidy(() => {
      const ev = model.forward(x, { training: false });
      assertClose(`${c.arch} eval logits`, ev.logits.dataSync(), g.eval.logits.flat(), rel);
      checkTaps(`${c.arch} eval`, ev.taps, g.eval.taps, rel);

      const zero = new Set(c.maskChannels.zero);
      const mask = tf.tensor1d(Array.from({ length: c.maskChannels.channels }, (_, i) => (zero.has(i) ? 0 : 1)));
      const masked = model.forward(x, { training: false, channelMask: () => mask });
      assertClose(`${c.arch} masked logits`, masked.logits.dataSync(), g.evalMasked.logits.flat(), rel);
      checkTaps(`${c.arch} masked`, { [c.maskTap]: masked.taps[c.maskTap] }, { [c.maskTap]: g.evalMasked.maskTap }, rel);

      const tr = model.forward(x, { training: true });
      assertClose(`${c.arch} train logits`, tr.logits.dataSync(), g.train.logits.flat(), rel);
      checkTaps(`${c.arch} train`, tr.taps, g.train.taps, rel);
    });
    const params = byName(model);
    for (const [bn, want] of Object.entries(g.train.running)) {
      assertClose(`${c.arch} ${bn}.running_mean`, params.get(`${bn}.running_mean`)!.variable.dataSync(), want.running_mean, rel);
      assertClose(`${c.arch} ${bn}.running_var`, params.get(`${bn}.running_var`)!.variable.dataSync(), want.running_var, rel);
    }
    x.dispose();
  } finally {
    model.dispose();
  }
}

function checkGradients(g: GoldenCase): void {
  const c = g.case;
  const model = build(c);
  const rel = tolerance(g);
  try {
    setFormulaParams(model);
    const x = formulaInput(c.batch, ...c.inputShape);
    const params = byName(model);
    tf.tidy(() => {
      const up = formulaUpstream(c.batch, c.numClasses);
      const chosen = Object.keys(g.train.paramGrads).map((n) => params.get(n)!);
      const loss = (): tf.Scalar => tf.sum(tf.mul(model.forward(x, { training: true }).logits, up));
      const { grads: pg } = tf.variableGrads(loss, chosen.map((p) => p.variable));
      for (const p of chosen) {
        const want = g.train.paramGrads[p.name];
        const flat = Array.from(toTorchLayout(p, pg[p.variable.name]).dataSync());
        const sumsq = flat.reduce((a, v) => a + v * v, 0);
        const sum = flat.reduce((a, v) => a + v, 0);
        if (want.sumsq < 1e-20) {
          // Conv biases right before a train-mode BatchNorm: exactly zero in exact arithmetic.
          const others = chosen.filter((q) => g.train.paramGrads[q.name].sumsq > 1e-20);
          const typical = Math.max(...others.map((q) => Math.sqrt(g.train.paramGrads[q.name].sumsq)));
          assert.ok(Math.sqrt(sumsq) < 1e-4 * typical, `${c.arch} d/d${p.name} should vanish: |g| = ${Math.sqrt(sumsq)}`);
          continue;
        }
        const rms = Math.sqrt(want.sumsq / flat.length);
        assertClose(`${c.arch} d/d${p.name} head`, flat.slice(0, 8), want.head, rel, rms);
        assertSummaryClose(`${c.arch} d/d${p.name}`, { shape: [flat.length], sum, sumsq, probe: [] }, { shape: [flat.length], sum: want.sum, sumsq: want.sumsq, probe: [] }, rel);
      }
    });
    // Input gradient in a second pass (the first moved the running stats; train mode ignores them).
    tf.tidy(() => {
      const up = formulaUpstream(c.batch, c.numClasses);
      const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.mul(model.forward(input as tf.Tensor4D, { training: true }).logits, up)))(x);
      assertSummaryClose(`${c.arch} dx`, summarize(dx), g.train.inputGrad, rel);
    });
    x.dispose();
  } finally {
    model.dispose();
  }
}

for (const g of golden.cases) {
  test(`${g.case.arch}: forward (eval, masked, train, running stats) matches PyTorch on wasm`, async () => {
    await initBackend('wasm');
    checkForward(g);
  });
  test(`${g.case.arch}: forward matches PyTorch on cpu`, async () => {
    await initBackend('cpu');
    checkForward(g);
  });
  test(`${g.case.arch}: gradients match PyTorch on cpu and wasm`, async () => {
    await initBackend('cpu');
    checkGradients(g);
    // Stock tfjs-wasm 4.22 has no Conv2DBackpropFilter; src/engine/kernels registers one.
    await initBackend('wasm');
    assert.ok(tf.getKernel('Conv2DBackpropFilter', 'wasm'), 'wasm backend lacks Conv2DBackpropFilter');
    checkGradients(g);
  });
}
