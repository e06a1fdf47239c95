// PGD adversarial training (Madry et al.): CE on PGD examples only. Under IB-RAR the taps
// come from the adversarial forward and X is the clean batch (docs/method.md §1.3; `ib.input`
// switches X to the adversarial batch as the code's --advinput does).
import { tf } from '../../engine/tf';
import { craftPgd } from '../adversary';
import { crossEntropy } from './losses';
import type { Objective } from './types';

export const pgdAtObjective: Objective = {
  name: 'pgd-at',
  async prepare(ctx) {
    return { xAdv: await craftPgd(ctx.model, ctx.x, ctx.y, ctx.cfg.train.attack, ctx.rng) };
  },
  loss(ctx, prepared) {
    const xAdv = prepared.xAdv!;
    const { logits, taps } = ctx.model.forward(xAdv, { training: true, channelMask: ctx.channelMask });
    const ce = crossEntropy(logits, ctx.yOneHot);
    if (!ctx.ib) return { total: ce, logs: { ce }, logitsForAccuracy: logits };
    const xForIb = ctx.cfg.ib.input === 'adversarial' ? xAdv : ctx.x;
    const ib = ctx.ib(taps, xForIb, ctx.yOneHot, '');
    return { total: tf.add(ce, ib.loss), logs: { ce, ib: ib.loss, ...ib.logs }, logitsForAccuracy: logits };
  },
};
