// A stop request interrupts the new variants (L2 / L1 APGD incl. the large-ε schedule, FAB,
// Square, AutoAttack versions, CW's binary search, EOT) at a yield point, and they leave no
// tensors behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { AttackInterrupted, yieldPointFor } from '../../src/attacks/interrupt';
import { getAttack } from '../../src/attacks/registry';
import { flat, readGolden, REPO_ROOT } from '../helpers/golden';
import { mlpTarget, nchwToNhwc, stochasticTarget } from './helpers';

const G = readGolden('attacks.json');
let small: ReturnType<typeof mlpTarget>;
let big: ReturnType<typeof mlpTarget>;
let xs: tf.Tensor4D;
let ys: tf.Tensor1D;
let xb: tf.Tensor4D;
let yb: tf.Tensor1D;

before(async () => {
  await initBackend('wasm');
  small = mlpTarget(G.model.layers, [3, 4, 4]);
  xs = tf.tensor4d(new Rng(1).fillUniform(new Float32Array(8 * 48), 0, 1), [8, 4, 4, 3]);
  ys = tf.tidy(() => tf.cast(tf.argMax(small.logits(xs), 1), 'int32') as tf.Tensor1D);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const M: any = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'attacks', 'fixtures', 'reference-aa.json'), 'utf8')).square_model;
  big = mlpTarget(M.layers, M.shape);
  xb = nchwToNhwc(flat(M.x), [M.labels.length, ...(M.shape as [number, number, number])]);
  yb = tf.tensor1d(M.labels, 'int32');
});

after(() => {
  small.dispose();
  big.dispose();
  tf.dispose([xs, ys, xb, yb]);
});

const CASES: [string, Record<string, unknown>, 'small' | 'big' | 'stochastic'][] = [
  ['apgd-ce', { norm: 'L2', eps: 0.5, steps: 20 }, 'small'],
  ['apgd-ce', { norm: 'L1', eps: 2, steps: 20 }, 'small'],
  ['apgd-t', { norm: 'L1', eps: 2, steps: 20, largeReps: true, nTargets: 2 }, 'small'],
  ['fab', { norm: 'L1', eps: 2, steps: 20 }, 'small'],
  ['fab-t', { norm: 'L2', eps: 0.5, steps: 20, nTargets: 2 }, 'small'],
  ['square', { norm: 'L2', eps: 0.5, queries: 200 }, 'big'],
  ['square', { norm: 'L1', eps: 2, queries: 200 }, 'big'],
  ['autoattack', { norm: 'L1', eps: 1, steps: 20, queries: 100 }, 'big'],
  ['autoattack', { version: 'rand', eps: 0.05, steps: 20, eot: 3 }, 'stochastic'],
  ['cw', { binarySteps: 4, steps: 20 }, 'small'],
  ['pgd', { eps: 0.05, steps: 20, eot: 4 }, 'stochastic'],
  ['apgd-dlr', { eps: 0.05, steps: 20, eot: 4 }, 'stochastic'],
];

for (const [name, params, which] of CASES) {
  for (const after of [1, 7]) {
    test(`${name} ${JSON.stringify(params)}: stops at yield point ${after}, no tensors left`, async () => {
      const target = which === 'big' ? big : which === 'stochastic' ? stochasticTarget(small) : small;
      const [x, y] = which === 'big' ? [xb, yb] : [xs, ys];
      let calls = 0;
      const yieldPoint = yieldPointFor(() => ++calls > after);
      const before = tf.memory().numTensors;
      await assert.rejects(getAttack(name).run({ target, rng: new Rng(0), yieldPoint }, x, y, params), AttackInterrupted);
      assert.equal(tf.memory().numTensors, before, 'tensors left behind');
    });
  }
}
