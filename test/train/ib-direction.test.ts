// Eq. (1) in action: relative to plain CE, the IB terms compress the input information in
// the regularised taps (HSIC(X,T) falls) and raise their label information (HSIC(Y,T) rises).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { train } from '../../src/jobs/train';
import { loadCheckpoint } from '../../src/runs/checkpoint';
import { buildModel } from '../../src/models/registry';
import { loadDataset, testBatches, toTensors } from '../../src/data';
import { hsicCcaValue } from '../../src/ib';
import { runLayout } from '../../src/runs/run-dir';
import { tinyConfig } from '../helpers/configs';

const LAYERS = ['conv3', 'fc1'];

async function heldOutHsic(ib: boolean): Promise<{ hx: number; hy: number }> {
  const cfg = tinyConfig({
    train: { epochs: 4, batchSize: 32, lr: 0.02 },
    data: { synthetic: { noise: 1.0, trainSize: 512 } },
    ib: { enabled: ib, layers: LAYERS, alpha: 0.1, beta: 1, yKernel: 'linear' },
  });
  const res = await train({ cfg });
  const ds = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(0));
  loadCheckpoint(runLayout(res.runDir).checkpoints, 'last', model);
  const batch = testBatches(ds.test, 100).next().value!;
  const out = tf.tidy(() => {
    const { x, yOneHot } = toTensors(batch, ds.numClasses);
    const { taps } = model.forward(x, { training: false });
    let hx = 0;
    let hy = 0;
    for (const l of LAYERS) {
      hx += hsicCcaValue(taps[l], x);
      hy += hsicCcaValue(taps[l], yOneHot, { kernelB: 'linear' });
    }
    return { hx, hy };
  });
  model.dispose();
  return out;
}

test('IB terms lower HSIC(X,T) and raise HSIC(Y,T) relative to CE (64 steps, synthetic data)', async () => {
  const ce = await heldOutHsic(false);
  const ib = await heldOutHsic(true);
  assert.ok(ib.hx < 0.7 * ce.hx, `HSIC(X,T): IB ${ib.hx.toFixed(3)} vs CE ${ce.hx.toFixed(3)}`);
  assert.ok(ib.hy > ce.hy + 0.1, `HSIC(Y,T): IB ${ib.hy.toFixed(3)} vs CE ${ce.hy.toFixed(3)}`);
});
