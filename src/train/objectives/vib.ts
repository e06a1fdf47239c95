// VIB (Alemi et al. 2017; docs/method.md §6): CE(dec(z), y) + β · mean_i KL(N(μ_i, σ_i²) ‖ N(0, I)),
// z = μ + σ·ε with one sample per example, ε from the step's own random stream (so a step is a
// function of seed, epoch and step, and resume is exact). Needs `model.head: vib`. The IB-RAR
// terms are added on the trunk's taps when `ib.enabled` (not a paper configuration).
import { tf } from '../../engine/tf';
import { UserError } from '../../errors';
import { isVibModel, vibKlRows } from '../../models/vib';
import { crossEntropy } from './losses';
import type { Objective } from './types';

export const vibObjective: Objective = {
  name: 'vib',
  async prepare(ctx) {
    if (!isVibModel(ctx.model)) throw new UserError("train.method 'vib' needs model.head: vib", undefined, 'model.head');
    return {};
  },
  loss(ctx) {
    if (!isVibModel(ctx.model)) throw new UserError("train.method 'vib' needs model.head: vib", undefined, 'model.head');
    const model = ctx.model;
    const { mu, sigma, taps } = model.encode(ctx.x, { training: true, channelMask: ctx.channelMask });
    const [n, k] = mu.shape;
    const eps = tf.tensor2d(ctx.rng.fork('vib').fillNormal(new Float32Array(n * k)), [n, k]);
    const logits = model.decode(tf.add(mu, tf.mul(sigma, eps)));
    const ce = crossEntropy(logits, ctx.yOneHot);
    const kl = tf.mean(vibKlRows(mu, sigma)) as tf.Scalar;
    let total = tf.add(ce, tf.mul(kl, model.vib.beta)) as tf.Scalar;
    const logs: Record<string, tf.Scalar | number> = { ce, kl };
    if (ctx.ib) {
      const ib = ctx.ib(taps, ctx.x, ctx.yOneHot, '');
      total = tf.add(total, ib.loss);
      Object.assign(logs, { ib: ib.loss }, ib.logs);
    }
    return { total, logs, logitsForAccuracy: logits };
  },
};
