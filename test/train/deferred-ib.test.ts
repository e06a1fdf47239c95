// The deferred IB mode (src/train/deferred-ib.ts), forced on wasm, against the one-pass step:
// the same loss, logs, masks, updated weights and BatchNorm running statistics after a few
// steps of ce+IB, pgd-at+IB, trades+IB (two IB calls and two masks per step), ce+IB+mask and
// vib+IB; no tensor left behind; and the configurations it refuses.
// Tolerance 1e-5 relative (the brief's bound); the two modes run the same float32 kernels on
// the same values, so on one machine they agree to the last bit (the first test says so).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { initBackend } from '../../src/engine/backend';
import { loadDataset, trainBatches } from '../../src/data';
import { buildModel } from '../../src/models/registry';
import { TrainStepper, type StepOutcome } from '../../src/train/step';
import type { IbMode } from '../../src/train/deferred-ib';
import type { ExperimentConfig } from '../../src/config/schema';
import { UserError } from '../../src/errors';
import { tinyConfig } from '../helpers/configs';

const REL = 1e-5;
const STEPS = 3;

interface Run {
  outs: StepOutcome[];
  params: Map<string, Float32Array>;
  /** Tensors alive before the first step and after the last one. */
  tensors: [number, number];
}

async function runSteps(cfg: ExperimentConfig, ibMode: IbMode): Promise<Run> {
  await initBackend('wasm');
  const ds = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(cfg.seed).fork('init'));
  const stepper = new TrainStepper(cfg, model, ds.numClasses, { ibMode });
  assert.equal(stepper.ibMode, ibMode);
  try {
    const before = tf.memory().numTensors;
    const outs: StepOutcome[] = [];
    for (const batch of trainBatches(ds.train, { batchSize: cfg.train.batchSize, seed: cfg.seed, epoch: 0, shuffle: true, augment: cfg.data.augment })) {
      if (batch.step >= STEPS) break;
      outs.push(await stepper.step(batch, 0, batch.step));
    }
    const after = tf.memory().numTensors;
    const params = new Map<string, Float32Array>();
    for (const p of model.params) params.set(p.name, Float32Array.from(await p.variable.data()));
    return { outs, params, tensors: [before, after] };
  } finally {
    stepper.dispose();
    model.dispose();
  }
}

function close(a: number, b: number, what: string): void {
  assert.ok(Number.isFinite(a) && Number.isFinite(b), `${what}: ${a} vs ${b}`);
  assert.ok(Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b), 1e-12), `${what}: deferred ${a} vs one-pass ${b}`);
}

/** Deferred vs one-pass on `cfg`; returns the two runs for extra checks. */
async function compare(cfg: ExperimentConfig): Promise<{ one: Run; def: Run }> {
  const one = await runSteps(cfg, 'one-pass');
  const def = await runSteps(cfg, 'deferred');
  assert.equal(def.outs.length, STEPS);
  def.outs.forEach((d, i) => {
    const o = one.outs[i];
    assert.equal(d.skipped, false);
    close(d.loss, o.loss, `step ${i} loss`);
    assert.equal(d.correct, o.correct, `step ${i} correct`);
    assert.deepEqual(Object.keys(d.logs).sort(), Object.keys(o.logs).sort(), `step ${i} log keys`);
    for (const k of Object.keys(o.logs)) close(d.logs[k], o.logs[k], `step ${i} ${k}`);
    assert.deepEqual(d.mask, o.mask, `step ${i} mask`);
  });
  for (const [name, want] of one.params) {
    const got = def.params.get(name)!;
    let scale = 0;
    let err = 0;
    for (let i = 0; i < want.length; i++) {
      scale = Math.max(scale, Math.abs(want[i]));
      err = Math.max(err, Math.abs(got[i] - want[i]));
    }
    assert.ok(err <= REL * scale, `${name}: max |deferred − one-pass| ${err} > ${REL} × ${scale}`);
  }
  assert.equal(def.tensors[1], def.tensors[0], `deferred mode leaves no tensors behind (${def.tensors})`);
  assert.equal(one.tensors[1], one.tensors[0], `one-pass mode leaves no tensors behind (${one.tensors})`);
  return { one, def };
}

const IB = { enabled: true, layers: ['conv3', 'fc1'], alpha: 0.05, beta: 0.5 };

test('ce + IB: deferred = one-pass (loss, logs, weights, BN running stats; bit for bit here)', async () => {
  const { one, def } = await compare(tinyConfig({ train: { method: 'ce', lr: 0.5 }, ib: IB }));
  // The IB terms moved the weights: the comparison above is not between two CE-only steps.
  assert.ok(Math.abs(one.outs[0].logs.ib) > 1e-3, `ib term ${one.outs[0].logs.ib}`);
  assert.ok(Number.isFinite(one.outs[0].logs['hx/conv3']) && Number.isFinite(one.outs[0].logs['hy/fc1']));
  let identical = true;
  for (const [name, want] of one.params) if (!def.params.get(name)!.every((v, i) => v === want[i])) identical = false;
  assert.ok(identical && def.outs.every((d, i) => d.loss === one.outs[i].loss), 'the same float32 kernels on the same values');
  const bn = one.params.get('bn3.running_mean')!;
  assert.ok(bn.some((v) => v !== 0), 'BatchNorm running statistics were updated');
});

test('pgd-at + IB: deferred = one-pass', async () => {
  await compare(tinyConfig({ train: { method: 'pgd-at', attack: { steps: 2, eps: 0.05 } }, ib: IB }));
});

test('trades + IB and a paper-rule mask (two IB calls, two masks per step): deferred = one-pass', async () => {
  const { one } = await compare(
    tinyConfig({
      train: { method: 'trades', attack: { steps: 2, eps: 0.05 } },
      ib: { ...IB, yKernel: 'gaussian', mask: { enabled: true, rule: 'paper', drop: 0.25, every: 1, skipFirstBatch: false } },
    }),
  );
  for (const k of ['hx/conv3', 'adv/hx/conv3', 'adv/hy/fc1', 'kl']) assert.ok(k in one.outs[0].logs, `${k} logged`);
  assert.equal(one.outs[0].mask!.filter((v) => v === 0).length, 8, '⌊0.25·32⌋ channels dropped');
});

test('ce + IB + code-rule mask due on steps 1 and 2: deferred = one-pass, with BatchNorm updated once per step', async () => {
  const { one } = await compare(
    tinyConfig({ ib: { ...IB, mask: { enabled: true, rule: 'code', lowY: 2, highX: 2, every: 1, skipFirstBatch: true } } }),
  );
  assert.deepEqual(
    one.outs.map((o) => o.mask !== null),
    [false, true, true],
  );
  assert.ok(one.outs[1].mask!.some((v) => v === 0));
});

test('vib + IB: the sampling noise comes from the step Rng, so every pass sees the same draws', async () => {
  await compare(tinyConfig({ model: { head: 'vib', vib: { k: 8, samples: 2 } }, train: { method: 'vib' }, ib: { ...IB, layers: ['conv3'] } }));
});

test('deferred mode without IB or mask is the plain step; IBRAR_IB_DEFERRED=1 selects it', async () => {
  await compare(tinyConfig());
  await initBackend('wasm');
  const cfg = tinyConfig({ ib: IB });
  const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1));
  const prev = process.env.IBRAR_IB_DEFERRED;
  try {
    const modeNow = (): string => {
      const stepper = new TrainStepper(cfg, model, 4);
      stepper.dispose();
      return stepper.ibMode;
    };
    process.env.IBRAR_IB_DEFERRED = '1';
    assert.equal(modeNow(), 'deferred');
    delete process.env.IBRAR_IB_DEFERRED;
    assert.equal(modeNow(), 'one-pass', 'wasm reads synchronously');
  } finally {
    if (prev === undefined) delete process.env.IBRAR_IB_DEFERRED;
    else process.env.IBRAR_IB_DEFERRED = prev;
    model.dispose();
  }
});

test('deferred mode refuses hbar and dropout with IB, naming why and the backends that work', async () => {
  await initBackend('wasm');
  const cases: Array<[ExperimentConfig, RegExp]> = [
    [tinyConfig({ train: { method: 'hbar' } }), /'hbar'.*wasm, cpu or tensorflow/],
    [tinyConfig({ model: { arch: 'wrn', depth: 10, widen: 1, width: 1, dropout: 0.3 }, ib: { ...IB, layers: 'all' } }), /dropout 0\.3.*webgpu/],
  ];
  for (const [cfg, re] of cases) {
    const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(1));
    try {
      assert.throws(() => new TrainStepper(cfg, model, 4, { ibMode: 'deferred' }), (e: unknown) => e instanceof UserError && re.test((e as Error).message));
      assert.doesNotThrow(() => new TrainStepper(cfg, model, 4, { ibMode: 'one-pass' }).dispose());
    } finally {
      model.dispose();
    }
  }
  // Dropout alone, without IB or mask, needs no extra pass and is accepted.
  const plain = tinyConfig({ model: { arch: 'wrn', depth: 10, widen: 1, width: 1, dropout: 0.3 } });
  const model = buildModel(plain.model, 4, [8, 8, 3], new Rng(1));
  assert.doesNotThrow(() => new TrainStepper(plain, model, 4, { ibMode: 'deferred' }).dispose());
  model.dispose();
});
