// PGD with restarts: an example fooled by any restart stays fooled (the first fooling point
// is kept), so accuracy can only drop with more restarts.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import { Rng } from '../../src/engine/rng';
import { pgd } from '../../src/attacks/pgd';
import { readGolden } from '../helpers/golden';
import { mlpTarget } from './helpers';

before(async () => {
  await initBackend('wasm');
});

test('PGD restarts: whatever the first restart fooled stays, accuracy can only drop', async () => {
  const G = readGolden('attacks.json');
  const target = mlpTarget(G.model.layers, [3, 4, 4]);
  const rng = new Rng(9);
  const n = 60;
  const x = tf.tensor4d(rng.fillUniform(new Float32Array(n * 48), 0, 1), [n, 4, 4, 3]);
  const labels = Int32Array.from(tf.tidy(() => tf.argMax(target.logits(x), 1).dataSync()));
  const y = tf.tensor1d(labels, 'int32');
  // Few small steps, so that the random start matters.
  const p = { eps: 0.03, steps: 3, alpha: 0.005 };
  const one = await pgd.run({ target, rng: new Rng(1) }, x, y, { ...p, restarts: 1 });
  const three = await pgd.run({ target, rng: new Rng(1) }, x, y, { ...p, restarts: 3 });
  const p1 = tf.tidy(() => tf.argMax(target.logits(one.xAdv), 1).dataSync());
  const p3 = tf.tidy(() => tf.argMax(target.logits(three.xAdv), 1).dataSync());
  const a1 = one.xAdv.dataSync();
  const a3 = three.xAdv.dataSync();
  let fooled1 = 0;
  let fooled3 = 0;
  for (let i = 0; i < n; i++) {
    if (p1[i] !== labels[i]) {
      fooled1++;
      for (let j = i * 48; j < (i + 1) * 48; j++) assert.equal(a3[j], a1[j], `example ${i} changed after being fooled`);
    }
    if (p3[i] !== labels[i]) fooled3++;
  }
  assert.ok(fooled1 > 0 && fooled3 > fooled1, `fooled ${fooled1} → ${fooled3}`);
  tf.dispose([x, y, one.xAdv, three.xAdv]);
  target.dispose();
});
