// Cross-entropy training, optionally with the IB terms of Eq. (1) on the clean taps.
import { tf } from '../../engine/tf';
import { crossEntropy } from './losses';
import type { Objective } from './types';

export const ceObjective: Objective = {
  name: 'ce',
  async prepare() {
    return {};
  },
  loss(ctx) {
    const { logits, taps } = ctx.model.forward(ctx.x, { training: true, channelMask: ctx.channelMask });
    const ce = crossEntropy(logits, ctx.yOneHot);
    if (!ctx.ib) return { total: ce, logs: { ce }, logitsForAccuracy: logits };
    const ib = ctx.ib(taps, ctx.x, ctx.yOneHot, '');
    return { total: tf.add(ce, ib.loss), logs: { ce, ib: ib.loss, ...ib.logs }, logitsForAccuracy: logits };
  },
};
