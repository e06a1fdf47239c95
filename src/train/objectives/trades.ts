// TRADES. `variant: ibrar-code` is what the IB-RAR code trains (CE on adversarial logits +
// 0.5·KL, x_adv from the CE-PGD); `original` is Zhang et al. (CE on clean logits + 6·KL,
// x_adv maximising the KL). Under IB-RAR the IB terms are taken on the taps of both
// forward passes, each paired with clean X (method.md §1.3).
import { tf } from '../../engine/tf';
import { craftPgd, craftTradesKl } from '../adversary';
import { tradesCodeLoss, tradesOriginalLoss } from './losses';
import type { Objective } from './types';

export const tradesObjective: Objective = {
  name: 'trades',
  async prepare(ctx) {
    const t = ctx.cfg.train;
    if (t.trades.variant === 'original') return { xAdv: craftTradesKl(ctx.model, ctx.x, t.attack, ctx.rng) };
    return { xAdv: await craftPgd(ctx.model, ctx.x, ctx.y, t.attack, ctx.rng) };
  },
  loss(ctx, prepared) {
    const t = ctx.cfg.train;
    const nat = ctx.model.forward(ctx.x, { training: true, channelMask: ctx.channelMask });
    const adv = ctx.model.forward(prepared.xAdv!, { training: true, channelMask: ctx.channelMask });
    const { loss, parts } =
      t.trades.variant === 'original'
        ? tradesOriginalLoss(nat.logits, adv.logits, ctx.yOneHot, t.trades.beta ?? 6)
        : tradesCodeLoss(nat.logits, adv.logits, ctx.yOneHot, t.trades.beta ?? 0.5);
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
