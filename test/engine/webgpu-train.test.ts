// `train` and `eval` on the webgpu backend (Dawn; in CI Mesa llvmpipe through OpenGL ES), where
// nothing can be read synchronously, against the same work on wasm:
//  - training steps with IB and a channel mask due (webgpu takes the deferred IB mode, wasm the
//    one-pass one) give the same loss, HSIC terms, masks, weights and BatchNorm statistics;
//  - train → checkpoint → eval with fgsm, pgd, cw and apgd-ce gives the same accuracies.
// Skips with the reason when the optional packages or an adapter are absent, unless
// IBRAR_TEST_REQUIRE_WEBGPU=1 (CI). Tiny models and data keep it to seconds on llvmpipe.
// Tolerance 1e-4 relative: float32 on both sides, the GPU sums in another order, and a few SGD
// steps carry the round-off along (measured: ~1e-6).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { initBackend } from '../../src/engine/backend';
import { loadDataset, trainBatches } from '../../src/data';
import { buildModel } from '../../src/models/registry';
import { TrainStepper, type StepOutcome } from '../../src/train/step';
import { train } from '../../src/jobs/train';
import { evaluateRun } from '../../src/jobs/eval';
import type { EvalReport } from '../../src/runs/eval-report';
import type { ExperimentConfig } from '../../src/config/schema';
import { UserError } from '../../src/errors';
import { tinyConfig } from '../helpers/configs';
import { webgpuIfAvailable } from '../helpers/webgpu';

const REL = 1e-4;
// Small logged values such as TRADES' KL (~2e-4) are differences of O(1) float32 sums, so their
// round-off is absolute, not relative (measured: 2.8e-8 on a KL of 2.4e-4).
const ABS = 1e-7;

function close(a: number, b: number, what: string): void {
  assert.ok(Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b)) + ABS, `${what}: webgpu ${a} vs wasm ${b}`);
}

function data(trainSize: number, testSize: number): Record<string, unknown> {
  return { dataset: 'synthetic', synthetic: { height: 8, width: 8, channels: 3, classes: 4, trainSize, testSize, noise: 0.15 } };
}

/**
 * tfjs runs small ops whose inputs are still on the CPU there, and those tensors can be read
 * synchronously: with every op on the GPU, a stray dataSync cannot pass unnoticed.
 */
function gpuOnly(): void {
  tf.env().set('WEBGPU_CPU_FORWARD', false);
}

interface Steps {
  mode: string;
  outs: StepOutcome[];
  params: Map<string, Float32Array>;
}

async function steps(cfg: ExperimentConfig, n: number): Promise<Steps> {
  const ds = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(cfg.seed).fork('init'));
  const stepper = new TrainStepper(cfg, model, ds.numClasses);
  try {
    const outs: StepOutcome[] = [];
    for (const batch of trainBatches(ds.train, { batchSize: cfg.train.batchSize, seed: cfg.seed, epoch: 0, shuffle: true })) {
      if (batch.step >= n) break;
      outs.push(await stepper.step(batch, 0, batch.step));
    }
    const params = new Map<string, Float32Array>();
    for (const p of model.params) params.set(p.name, Float32Array.from(await p.variable.data()));
    return { mode: stepper.ibMode, outs, params };
  } finally {
    stepper.dispose();
    model.dispose();
  }
}

const IB_MASK = {
  enabled: true,
  layers: ['conv3', 'fc1'],
  alpha: 0.05,
  beta: 0.5,
  mask: { enabled: true, rule: 'code', lowY: 2, highX: 2, every: 1, skipFirstBatch: false, applyAtEval: true },
};

test('webgpu: training steps with IB + mask (deferred) match wasm steps (one-pass)', { timeout: 60_000 }, async (t) => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['ce', { method: 'ce', batchSize: 16, lr: 0.2 }],
    ['trades (two IB calls, two masks)', { method: 'trades', batchSize: 16, attack: { steps: 2, eps: 0.05 } }],
  ];
  const cfgs = cases.map(([, tr]) => tinyConfig({ data: data(64, 16), train: tr, ib: { ...IB_MASK, yKernel: 'gaussian' } }));
  await initBackend('wasm');
  const want: Steps[] = [];
  for (const cfg of cfgs) want.push(await steps(cfg, 3));
  if (!(await webgpuIfAvailable(t))) return;
  gpuOnly();
  const before = tf.memory().numTensors;
  for (const [i, [name]] of cases.entries()) {
    const got = await steps(cfgs[i], 3);
    assert.equal(got.mode, 'deferred', 'webgpu cannot read synchronously: deferred IB mode');
    assert.equal(want[i].mode, 'one-pass');
    got.outs.forEach((g, s) => {
      const w = want[i].outs[s];
      close(g.loss, w.loss, `${name} step ${s} loss`);
      assert.equal(g.correct, w.correct, `${name} step ${s} correct`);
      assert.deepEqual(Object.keys(g.logs).sort(), Object.keys(w.logs).sort());
      for (const k of Object.keys(w.logs)) close(g.logs[k], w.logs[k], `${name} step ${s} ${k}`);
      assert.ok(w.mask && w.mask.includes(0), 'the mask was due and dropped channels');
      assert.deepEqual(g.mask, w.mask, `${name} step ${s}: the same channels dropped`);
    });
    for (const [p, v] of want[i].params) {
      const gv = got.params.get(p)!;
      const scale = v.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      const err = v.reduce((m, x, k) => Math.max(m, Math.abs(gv[k] - x)), 0);
      assert.ok(err <= REL * scale, `${name} ${p}: max |webgpu − wasm| ${err} > ${REL} × ${scale}`);
    }
    assert.ok(want[i].params.get('bn3.running_var')!.some((v) => v !== 1), 'BatchNorm running statistics moved');
  }
  assert.equal(tf.memory().numTensors, before, 'no tensors left behind on webgpu');
});

const ATTACKS = ['fgsm', 'pgd', 'cw', 'apgd-ce'];

async function trainAndEval(backend: 'wasm' | 'webgpu'): Promise<{ report: EvalReport; trainLoss: number; testAcc: number }> {
  const cfg = tinyConfig({ backend, data: data(128, 32), train: { epochs: 2, batchSize: 16, lr: 0.1 }, ib: IB_MASK });
  const res = await train({ cfg });
  const { report } = await evaluateRun({ runDir: res.runDir, checkpoint: 'last', attacks: ATTACKS, eps: 0.15, steps: 10, batchSize: 32, seed: 0 });
  const last = res.records[res.records.length - 1];
  return { report: report!, trainLoss: last.train_loss, testAcc: last.test_acc };
}

test('webgpu: train → checkpoint → eval (fgsm, pgd, cw, apgd-ce) gives the wasm accuracies', { timeout: 60_000 }, async (t) => {
  const want = await trainAndEval('wasm');
  if (!(await webgpuIfAvailable(t))) return;
  gpuOnly();
  const got = await trainAndEval('webgpu');
  const n = want.report.n;
  close(got.trainLoss, want.trainLoss, 'last epoch train loss');
  assert.equal(got.testAcc, want.testAcc, 'test accuracy at the end of training');
  assert.equal(got.report.mask_applied, true);
  assert.equal(got.report.clean_acc, want.report.clean_acc, 'clean accuracy');
  // Not a vacuous comparison: the model learned, and the attacks do something.
  assert.ok(want.report.clean_acc >= 0.5, `clean accuracy ${want.report.clean_acc}`);
  assert.ok(want.report.attacks.some((a) => a.robust_acc < want.report.clean_acc), 'some attack lowers the accuracy');
  for (const a of ATTACKS) {
    const g = got.report.attacks.find((s) => s.attack === a)!;
    const w = want.report.attacks.find((s) => s.attack === a)!;
    // Adversarial examples carry GPU round-off; an example right at a decision boundary may flip.
    assert.ok(Math.abs(g.robust_acc - w.robust_acc) <= 1 / n + 1e-12, `${a}: webgpu ${g.robust_acc} vs wasm ${w.robust_acc} (n ${n})`);
  }
  t.diagnostic(
    `accuracies webgpu | wasm: clean ${got.report.clean_acc} | ${want.report.clean_acc}; ` +
      ATTACKS.map((a) => `${a} ${got.report.attacks.find((s) => s.attack === a)!.robust_acc} | ${want.report.attacks.find((s) => s.attack === a)!.robust_acc}`).join('; '),
  );

  // The adaptive attack evaluates IB terms inside every gradient step: refused, naming what works.
  await assert.rejects(
    evaluateRun({ runDir: got.report.runDir, checkpoint: 'last', attacks: ['pgd-ad'], eps: 0.1, batchSize: 32, seed: 0, n: 8 }),
    (e: unknown) => e instanceof UserError && /pgd-ad.*webgpu cannot.*wasm, cpu or tensorflow/.test((e as Error).message),
  );
});
