// The contract of a training objective (ce, pgd-at, trades, mart, …). Adding one is a new
// file in this folder plus one line in ./registry.ts.
import type { tf } from '../../engine/tf';
import type { Rng } from '../../engine/rng';
import type { ExperimentConfig } from '../../config/schema';
import type { ForwardOptions, Model } from '../../models/types';

export type { IbTermsFn, IbTermsOut } from '../../ib/hooks';
import type { IbTermsFn } from '../../ib/hooks';

export interface StepContext {
  cfg: ExperimentConfig;
  model: Model;
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  yOneHot: tf.Tensor2D;
  /** Stateless per-step randomness (derived from seed, epoch and step). */
  rng: Rng;
  ib: IbTermsFn | null;
  /** Channel-mask hook for this batch (Eq. 3), when the mask is due on it. */
  channelMask?: ForwardOptions['channelMask'];
}

export interface Prepared {
  /** Adversarial inputs crafted before the gradient tape opens (model in eval mode). */
  xAdv?: tf.Tensor4D;
}

export interface LossOut {
  total: tf.Scalar;
  /** Values to log (averaged over the epoch): ce, ib, kl, hx/<layer>, … */
  logs: Record<string, tf.Scalar | number>;
  /** Logits whose accuracy is reported as train accuracy (adversarial ones under AT). */
  logitsForAccuracy: tf.Tensor2D;
}

export interface Objective {
  readonly name: string;
  /** Outside the tape: adversarial example generation and other non-differentiable work. */
  prepare(ctx: StepContext): Promise<Prepared>;
  /** Inside the tape: the differentiable loss. */
  loss(ctx: StepContext, prepared: Prepared): LossOut;
}
