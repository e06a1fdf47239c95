// A Model seen as an attack target: forward in eval mode (BN running statistics, no
// dropout), optionally with the channel mask (docs/method.md §2; the code evaluates without it).
// Models with randomness also get `sampleLogits`, the same forward with the randomness on.
import { tf } from '../engine/tf';
import type { ForwardOptions, Model } from '../models/types';
import type { AttackTarget } from './types';

export interface TargetOptions {
  channelMask?: ForwardOptions['channelMask'];
}

export function targetFromModel(model: Model, opts: TargetOptions = {}): AttackTarget {
  const forwardOpts: ForwardOptions = { training: false, channelMask: opts.channelMask };
  const target: AttackTarget = {
    numClasses: model.numClasses,
    // tidy frees the taps the forward also returns; inside tf.grad the tape keeps what it needs.
    logits: (x) => tf.tidy(() => model.forward(x, forwardOpts).logits),
  };
  // A model with randomness (VIB, dropout) also offers its stochastic forward, for EOT.
  if (model.stochastic) target.sampleLogits = (x, rng) => tf.tidy(() => model.forward(x, { ...forwardOpts, sample: rng }).logits);
  return target;
}
