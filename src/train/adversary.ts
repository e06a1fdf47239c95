// Training-time adversary: PGD-L∞ with the model in eval mode (BN running statistics),
// as the reference scripts generate their training examples (docs/method.md §3).
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import type { TrainAttackConfig } from '../config/schema';
import type { Model } from '../models/types';
import { getAttack } from '../attacks/registry';
import { targetFromModel } from '../attacks/target';
import { projectLinfMinMax } from '../attacks/common';

export async function craftPgd(model: Model, x: tf.Tensor4D, y: tf.Tensor1D, cfg: TrainAttackConfig, rng: Rng): Promise<tf.Tensor4D> {
  const attack = getAttack('pgd');
  const res = await attack.run({ target: targetFromModel(model), rng }, x, y, {
    ...attack.defaults,
    eps: cfg.eps,
    alpha: cfg.alpha,
    steps: cfg.steps,
    randomStart: cfg.randomStart,
  });
  return res.xAdv;
}

/**
 * TRADES' own adversary (Zhang et al.): maximise KL(p(x)‖p(x')) from x + 0.001·N(0,1),
 * sign steps of size α, projected to the ε-ball and [0,1].
 */
export function craftTradesKl(model: Model, x: tf.Tensor4D, cfg: TrainAttackConfig, rng: Rng): tf.Tensor4D {
  const alpha = cfg.alpha;
  const pNat = tf.tidy(() => tf.softmax(model.forward(x, { training: false }).logits));
  let xAdv = tf.tidy(() => tf.clipByValue(tf.add(x, tf.mul(tf.randomNormal(x.shape, 0, 1, 'float32', rng.seed()), 0.001)), 0, 1)) as tf.Tensor4D;
  for (let i = 0; i < cfg.steps; i++) {
    const next = tf.tidy(() => {
      const grad = tf.grad((xa: tf.Tensor) => {
        const logQ = tf.logSoftmax(model.forward(xa as tf.Tensor4D, { training: false }).logits);
        return tf.sum(tf.mul(pNat, tf.sub(tf.log(tf.add(pNat, 1e-12)), logQ)));
      })(xAdv);
      return projectLinfMinMax(tf.add(xAdv, tf.mul(tf.sign(grad), alpha)) as tf.Tensor4D, x, cfg.eps);
    });
    xAdv.dispose();
    xAdv = next;
  }
  pNat.dispose();
  return xAdv;
}
