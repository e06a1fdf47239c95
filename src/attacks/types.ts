// The attack contract. An attack sees a model only through `AttackTarget` (logits in eval
// mode), so the same code attacks any architecture, a masked model, or a tiny test MLP.
import type { z } from 'zod';
import type { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import type { YieldPoint } from './interrupt';

export interface AttackTarget {
  numClasses: number;
  /** Logits in eval mode (BN running statistics; no channel mask unless the evaluator decides). */
  logits(x: tf.Tensor4D): tf.Tensor2D;
  /**
   * One forward with the model's randomness on, drawn from `rng` (same state → same forward):
   * the VIB head samples fresh noise instead of its fixed evaluation noise, dropout is active;
   * BatchNorm still uses its running statistics. Absent on a deterministic target. Used by EOT
   * (./eot.ts).
   */
  sampleLogits?(x: tf.Tensor4D, rng: Rng): tf.Tensor2D;
}

/**
 * Extra terms an adaptive attack ascends together with the batch-mean CE (docs/method.md §5,
 * PGD_AD): `x` is the current adversarial batch, `xClean` the clean batch.
 */
export type ExtraLoss = (x: tf.Tensor4D, xClean: tf.Tensor4D, yOneHot: tf.Tensor2D) => tf.Scalar;

export interface AttackContext {
  target: AttackTarget;
  /** All randomness of an attack comes from here: same state → same adversarial batch. */
  rng: Rng;
  extraLoss?: ExtraLoss;
  /** Awaited between iterations so that a stop request interrupts the attack (./interrupt.ts). */
  yieldPoint?: YieldPoint;
  /**
   * Transfer attacks (mifgsm, difgsm) craft on this model instead of `target` (white-box when
   * absent); the evaluator fills it from `--surrogate RUN_DIR`. Other attacks ignore it.
   */
  surrogate?: AttackTarget;
}

export interface AttackResult {
  /** NHWC in [0,1], same shape as the input. The caller disposes it. */
  xAdv: tf.Tensor4D;
  /** Model queries spent on the batch (sum over examples), for query-counting attacks. */
  queries?: number;
  /**
   * Per example, the norm (in the attack's `norm`) of the perturbation that fooled the model;
   * +∞ where the attack did not. Minimum-norm attacks (CW) report it; the evaluator averages it
   * over the examples that were correct and got fooled.
   * fmn, deepfool and hopskipjump report the best norm found even where it exceeds their `eps`
   * (that row then comes back as x, i.e. robust at eps), so that a robust-accuracy curve over
   * budgets can be drawn from one run: see ./min-norm.ts.
   */
  distances?: Float32Array;
  /** Per-batch statistics (averaged over batches, weighted by batch size). */
  extra?: Record<string, number>;
}

export type AttackNorm = 'linf' | 'l2' | 'none';
/** The norm of an attack whose norm is a parameter (fmn, deepfool, hopskipjump); L1 only for FMN. */
export type DistanceNorm = 'linf' | 'l2' | 'l1';

export interface Attack<P> {
  name: string;
  description: string;
  norm: AttackNorm;
  /** Attacks whose norm is a parameter: the norm of a parsed parameter set (`norm` is the defaults'). */
  normOf?(params: P): DistanceNorm;
  /** Every parameter with its default (optional ones, such as a derived α, are absent). */
  defaults: P;
  /** Strict: unknown keys are errors. Parses partial input and fills in the defaults. */
  paramsSchema: z.ZodType<P, z.ZodTypeDef, unknown>;
  /**
   * x: NHWC in [0,1]; y: int32 labels. `params` is validated here (it may come straight from
   * a config or the command line); missing keys take their defaults. Throws UserError on bad
   * parameters.
   */
  run(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, params: Partial<P>): Promise<AttackResult>;
}
