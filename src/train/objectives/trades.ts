// TRADES. `variant: ibrar-code` is what the IB-RAR code trains (CE on adversarial logits +
// 0.5·KL, x_adv from the CE-PGD); `original` is Zhang et al. (CE on clean logits + 6·KL,
// x_adv maximising the KL). Under IB-RAR the IB terms are taken on the taps of both
// forward passes, each paired with clean X (docs/method.md §1.3).
import { craftPgd, craftTradesKl } from '../adversary';
import { tradesCodeLoss, tradesOriginalLoss } from './losses';
import { twoPassLoss } from './two-pass';
import type { Objective } from './types';

export const tradesObjective: Objective = {
  name: 'trades',
  async prepare(ctx) {
    const t = ctx.cfg.train;
    if (t.trades.variant === 'original') return { xAdv: craftTradesKl(ctx.model, ctx.x, t.attack, ctx.rng) };
    return { xAdv: await craftPgd(ctx.model, ctx.x, ctx.y, t.attack, ctx.rng) };
  },
  loss(ctx, prepared) {
    const t = ctx.cfg.train.trades;
    return twoPassLoss(ctx, prepared, (nat, adv) =>
      t.variant === 'original' ? tradesOriginalLoss(nat, adv, ctx.yOneHot, t.beta) : tradesCodeLoss(nat, adv, ctx.yOneHot, t.beta),
    );
  },
};
