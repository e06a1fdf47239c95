// A Model seen as an attack target: forward in eval mode (BN running statistics, no
// dropout), optionally with the channel mask (method.md §2; the code evaluates without it).
import { tf } from '../engine/tf';
import type { ForwardOptions, Model } from '../models/types';
import type { AttackTarget } from './types';

export interface TargetOptions {
  channelMask?: ForwardOptions['channelMask'];
}

export function targetFromModel(model: Model, opts: TargetOptions = {}): AttackTarget {
  const forwardOpts: ForwardOptions = { training: false, channelMask: opts.channelMask };
  return {
    numClasses: model.numClasses,
    // tidy frees the taps the forward also returns; inside tf.grad the tape keeps what it needs.
    logits: (x) => tf.tidy(() => model.forward(x, forwardOpts).logits),
  };
}
