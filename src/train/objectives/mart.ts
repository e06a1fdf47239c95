// MART (Wang et al. 2020) with the IB-RAR code's β = 0.5 by default (6 in MART's paper);
// IB terms on both passes with clean X, as TRADES (method.md §1.3, §4).
import { tf } from '../../engine/tf';
import { craftPgd } from '../adversary';
import { martLoss } from './losses';
import type { Objective } from './types';

export const martObjective: Objective = {
  name: 'mart',
  async prepare(ctx) {
    return { xAdv: await craftPgd(ctx.model, ctx.x, ctx.y, ctx.cfg.train.attack, ctx.rng) };
  },
  loss(ctx, prepared) {
    const nat = ctx.model.forward(ctx.x, { training: true, channelMask: ctx.channelMask });
    const adv = ctx.model.forward(prepared.xAdv!, { training: true, channelMask: ctx.channelMask });
    const { loss, parts } = martLoss(nat.logits, adv.logits, ctx.yOneHot, ctx.cfg.train.mart.beta);
    const logs: Record<string, tf.Scalar | number> = { ...parts };
    let total = loss;
    if (ctx.ib) {
      const ibNat = ctx.ib(nat.taps, ctx.x, ctx.yOneHot, '');
      const ibAdv = ctx.ib(adv.taps, ctx.cfg.ib.input === 'adversarial' ? prepared.xAdv! : ctx.x, ctx.yOneHot, 'adv/');
      const ib = tf.add(ibNat.loss, ibAdv.loss) as tf.Scalar;
      total = tf.add(total, ib);
      Object.assign(logs, ibNat.logs, ibAdv.logs, { ib });
    }
    return { total, logs, logitsForAccuracy: adv.logits };
  },
};
