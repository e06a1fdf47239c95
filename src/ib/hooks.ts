// Where the IB terms (Eq. 1/2) and the channel mask (Eq. 3) hook into training and
// evaluation. The math lives in the other files of src/ib; this one wires it to configs and models.
import { tf } from '../engine/tf';
import type { ExperimentConfig, IbConfig, MaskConfig } from '../config/schema';
import type { ForwardOptions, Model } from '../models/types';
import { ibRegularizer, ibTargets, resolveLayers, makeChannelMaskHook, type IbLayerTerms, type IbTargets, type MaskRuleOptions } from './index';
import type { ExtraLoss } from '../attacks/types';
import { UserError } from '../errors';
import { backendReadsSync } from '../engine/reads';

/** IB terms of Eq. (1)/(2) for one set of taps. */
export type IbTermsFn = (taps: Record<string, tf.Tensor>, xForIb: tf.Tensor4D, yOneHot: tf.Tensor2D, prefix: string) => IbTermsOut;

export interface IbTermsOut {
  /** α·Σ HSIC(X,T_l) − β·Σ HSIC(Y,T_l) */
  loss: tf.Scalar;
  /** Per-layer values to log, keyed `hx/<layer>` and `hy/<layer>` (prefixed for the adversarial pass). */
  logs: Record<string, number>;
}

/** Build the IB-terms function for the configured layers; errors on layers the model lacks. */
export function makeIbTerms(ib: IbConfig, model: Model): IbTermsFn {
  const layers = resolveLayers(ib.layers, model);
  // X's and Y's kernel factorisations depend only on the batch: TRADES/MART's two passes and
  // every step of the adaptive attack reuse them (they are host arrays, no tensors to free).
  const cache = new WeakMap<tf.Tensor, { y: tf.Tensor; targets: IbTargets }>();
  const targetsFor = (x: tf.Tensor, y: tf.Tensor2D): IbTargets => {
    const hit = cache.get(x);
    if (hit && hit.y === y) return hit.targets;
    const targets = ibTargets(x, y, ib.yKernel, { sigma: ib.sigma });
    cache.set(x, { y, targets });
    return targets;
  };
  return (taps, xForIb, yOneHot, prefix) => {
    const res = ibRegularizer({
      x: xForIb,
      yOneHot,
      taps,
      layers,
      alpha: ib.alpha,
      beta: ib.beta,
      sigma: ib.sigma,
      yKernel: ib.yKernel,
      targets: targetsFor(xForIb, yOneHot),
    });
    return { loss: res.loss, logs: ibLogs(res.perLayer, prefix) };
  };
}

/** The per-layer values an IB call logs: `<prefix>hx/<layer>`, `<prefix>hy/<layer>`. */
export function ibLogs(perLayer: Record<string, IbLayerTerms>, prefix: string): Record<string, number> {
  const logs: Record<string, number> = {};
  for (const [layer, t] of Object.entries(perLayer)) {
    logs[`${prefix}hx/${layer}`] = t.hx;
    logs[`${prefix}hy/${layer}`] = t.hy;
  }
  return logs;
}

/** Whether the mask is (re)computed and applied on training batch `step` of an epoch. */
export function maskDue(mask: MaskConfig, step: number): boolean {
  if (mask.skipFirstBatch && step === 0) return false;
  return step % mask.every === 0;
}

/** The config's mask rule as src/ib/mask.ts takes it. */
export function maskRuleOf(ib: IbConfig): MaskRuleOptions {
  const { rule, drop, lowY, highX, skipLastChannel } = ib.mask;
  return { rule, drop, lowY, highX, skipLastChannel };
}

/** A hook computing the mask from this batch's features; `onMask` receives each mask. */
export function makeMaskHook(ib: IbConfig, labels: ArrayLike<number>, numClasses: number, onMask: (mask: Float32Array) => void): ForwardOptions['channelMask'] {
  return makeChannelMaskHook({
    labels,
    numClasses,
    sigma: ib.sigma,
    rule: maskRuleOf(ib),
    onResult: (r) => onMask(r.mask),
  });
}

/** A hook applying a fixed mask (the one stored in a checkpoint) at evaluation. */
export function constantMaskHook(mask: Float32Array): ForwardOptions['channelMask'] {
  return () => tf.tensor1d(mask);
}

/**
 * The adaptive attack's extra objective (paper Table 6, docs/method.md §5 PGD_AD): the model's own
 * IB terms, which the attacker ascends together with CE. The reference hard-codes α = 0.008,
 * β = 0.08 on all taps with a gaussian Y kernel; we take the run's own `ib` settings when IB
 * was on (its real training objective), else the reference's.
 */
export function makeAdaptiveLoss(cfg: ExperimentConfig, model: Model): ExtraLoss {
  if (!backendReadsSync()) {
    // Its HSIC terms read the taps' Grams inside every PGD step's gradient; deferring them as
    // training does would cost an extra forward per attack step (not done).
    throw new UserError(
      `attack 'pgd-ad' needs a backend that reads tensors synchronously (its IB terms are evaluated inside each gradient step); ` +
        `backend ${tf.getBackend()} cannot. Evaluate on backend wasm, cpu or tensorflow (\`backend\` in the run's config.yaml)`,
    );
  }
  const ib: IbConfig = cfg.ib.enabled ? cfg.ib : { ...cfg.ib, layers: 'all', alpha: 0.008, beta: 0.08, yKernel: 'gaussian' };
  const terms = makeIbTerms(ib, model);
  return (x, xClean, yOneHot) => {
    const { taps } = model.forward(x, { training: false });
    // The attacker maximises CE + [α·ΣHSIC(X,T) − β·ΣHSIC(Y,T)], i.e. the training loss.
    return terms(taps, xClean, yOneHot, '').loss;
  };
}
