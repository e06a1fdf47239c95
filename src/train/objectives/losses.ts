// Loss functions on logits (pure, differentiable). Labels enter as one-hot float tensors:
// tfjs-wasm cannot differentiate tf.gather (UnsortedSegmentSum is missing).
import { tf } from '../../engine/tf';
import { ceMean as crossEntropy } from '../../attacks/common';

/** Mean cross-entropy, F.cross_entropy(logits, y): the same function the attacks ascend. */
export { crossEntropy };

/** Identity whose gradient is zero: marks values the loss must treat as constants. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const stopGradientImpl = tf.customGrad(((x: tf.Tensor) => ({
  value: tf.clone(x),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
})) as any);
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return stopGradientImpl(x) as T;
}

/** Per-row KL(p‖q) = Σ_c p_c (log p_c − log q_c), with 0·log 0 = 0 (KLDivLoss semantics). */
export function klRows(logitsP: tf.Tensor2D, logQ: tf.Tensor2D): tf.Tensor1D {
  const logP = tf.logSoftmax(logitsP);
  const p = tf.exp(logP);
  return tf.sum(tf.mul(p, tf.sub(logP, logQ)), 1);
}

export interface LossParts {
  loss: tf.Scalar;
  parts: Record<string, tf.Scalar>;
}

/** TRADES as the IB-RAR code trains it (train_TRADES.py): CE(f(x_adv), y) + β·KL(p(x)‖p(x_adv)), β = 0.5. */
export function tradesCodeLoss(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, yOneHot: tf.Tensor2D, beta = 0.5): LossParts {
  const ce = crossEntropy(logitsAdv, yOneHot);
  const kl = tf.mean(klRows(logitsNat, tf.logSoftmax(logitsAdv))) as tf.Scalar;
  return { loss: tf.add(ce, tf.mul(kl, beta)), parts: { ce_adv: ce, kl } };
}

/** TRADES (Zhang et al. 2019): CE(f(x), y) + β·KL(p(x)‖p(x_adv)), β = 6. */
export function tradesOriginalLoss(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, yOneHot: tf.Tensor2D, beta = 6): LossParts {
  const ce = crossEntropy(logitsNat, yOneHot);
  const kl = tf.mean(klRows(logitsNat, tf.logSoftmax(logitsAdv))) as tf.Scalar;
  return { loss: tf.add(ce, tf.mul(kl, beta)), parts: { ce_nat: ce, kl } };
}

/**
 * MART (Wang et al. 2020; same form in the IB-RAR code, β = 0.5 there, 6 in MART):
 *   BCE = CE(f(x_adv), y) − mean_i log(1.0001 − p'_{i,ŷ_i} + 1e-12),  ŷ = top non-true class of p' = p(x_adv)
 *   ROB = mean_i KL(p(x_i)‖p'_i)·(1.0000001 − p_{y_i}(x_i))   (weight not detached)
 */
export function martLoss(logitsNat: tf.Tensor2D, logitsAdv: tf.Tensor2D, yOneHot: tf.Tensor2D, beta: number): LossParts {
  const advP = tf.softmax(logitsAdv);
  // ŷ: the most probable wrong class; a constant selector (no gradient through the argmax).
  const wrongOnly = tf.sub(stopGradient(advP), tf.mul(yOneHot, 2));
  const newY = stopGradient(tf.oneHot(tf.argMax(wrongOnly, 1), yOneHot.shape[1]).toFloat() as tf.Tensor2D);
  const pNewY = tf.sum(tf.mul(advP, newY), 1);
  const bce = tf.add(crossEntropy(logitsAdv, yOneHot), tf.neg(tf.mean(tf.log(tf.add(tf.sub(1.0001, pNewY), 1e-12))))) as tf.Scalar;
  const natP = tf.softmax(logitsNat);
  const trueP = tf.sum(tf.mul(natP, yOneHot), 1);
  const kl = klRows(logitsNat, tf.log(tf.add(advP, 1e-12)) as tf.Tensor2D);
  const robust = tf.mean(tf.mul(kl, tf.sub(1.0000001, trueP))) as tf.Scalar;
  return { loss: tf.add(bce, tf.mul(robust, beta)), parts: { bce, robust } };
}

/** Number of rows whose argmax equals the label. */
export function correctCount(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), labels), 'int32'));
}
