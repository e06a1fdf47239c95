// What TRADES and MART share: a clean and an adversarial train-mode forward, their own loss on
// the two logit sets, and — under IB-RAR — the IB terms on the taps of both passes, each paired
// with clean X (or x_adv when `ib.input: adversarial`), as the authors' code (docs/method.md §1.3).
import { tf } from '../../engine/tf';
import type { LossParts } from './losses';
import type { LossOut, Prepared, StepContext } from './types';

export function twoPassLoss(
  ctx: StepContext,
  prepared: Prepared,
  lossFn: (logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D) => LossParts,
): LossOut {
  const xAdv = prepared.xAdv!;
  const nat = ctx.model.forward(ctx.x, { training: true, channelMask: ctx.channelMask });
  const adv = ctx.model.forward(xAdv, { training: true, channelMask: ctx.channelMask });
  const { loss, parts } = lossFn(nat.logits, adv.logits);
  const logs: Record<string, tf.Scalar | number> = { ...parts };
  let total = loss;
  if (ctx.ib) {
    const ibNat = ctx.ib(nat.taps, ctx.x, ctx.yOneHot, '');
    const ibAdv = ctx.ib(adv.taps, ctx.cfg.ib.input === 'adversarial' ? xAdv : ctx.x, ctx.yOneHot, 'adv/');
    const ib = tf.add(ibNat.loss, ibAdv.loss) as tf.Scalar;
    total = tf.add(total, ib);
    Object.assign(logs, ibNat.logs, ibAdv.logs, { ib });
  }
  return { total, logs, logitsForAccuracy: adv.logits };
}
