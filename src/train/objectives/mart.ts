// MART (Wang et al. 2020) with the IB-RAR code's β = 0.5 by default (6 in MART's paper);
// IB terms on both passes with clean X, as TRADES (docs/method.md §1.3, §4).
import { craftPgd } from '../adversary';
import { martLoss } from './losses';
import { twoPassLoss } from './two-pass';
import type { Objective } from './types';

export const martObjective: Objective = {
  name: 'mart',
  async prepare(ctx) {
    return { xAdv: await craftPgd(ctx.model, ctx.x, ctx.y, ctx.cfg.train.attack, ctx.rng) };
  },
  loss(ctx, prepared) {
    return twoPassLoss(ctx, prepared, (nat, adv) => martLoss(nat, adv, ctx.yOneHot, ctx.cfg.train.mart.beta));
  },
};
