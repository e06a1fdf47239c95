// The IB regularizer of Eq. (1)/(2): Σ_{l∈S} α·HSIC(T_l, X) − β·HSIC(T_l, Y), with
// HSIC = normalised-CCA HSIC (method.md §1.1), argument order as the reference code: the tap
// first (gaussian), X second (gaussian), Y second with `yKernel`.
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import { ccaTarget, hsicCcaMany, HSIC_EPS, HSIC_SIGMA, type CcaTarget, type KernelKind } from './hsic';

export interface IbRegularizerArgs {
  /** X of HSIC(T, X): the clean batch by default (method.md §1.3), any layout [m, ...]. */
  x: tf.Tensor;
  /** One-hot labels [m, nClasses] (width nClasses, not max(label)+1; see method.md §1.1). */
  yOneHot: tf.Tensor2D;
  /** Taps of the forward pass, by name. */
  taps: Record<string, tf.Tensor>;
  /** The selected layers S (tap names; see resolveLayers). */
  layers: readonly string[];
  alpha: number;
  beta: number;
  sigma?: number;
  yKernel: KernelKind;
  eps?: number;
  /**
   * X's and Y's factorised kernels from ibTargets(x, yOneHot, …) with the same σ, ε and
   * yKernel, to reuse across calls on one batch (TRADES/MART's clean and adversarial taps,
   * the steps of an adaptive attack). Computed here when absent.
   */
  targets?: IbTargets;
}

/** The constant sides of Eq. (1): R_X (gaussian) and R_Y (yKernel) of one batch. */
export interface IbTargets {
  readonly x: CcaTarget;
  readonly y: CcaTarget;
  readonly yKernel: KernelKind;
}

export function ibTargets(x: tf.Tensor, yOneHot: tf.Tensor2D, yKernel: KernelKind, opts: { sigma?: number; eps?: number } = {}): IbTargets {
  if (yOneHot.shape[0] !== x.shape[0]) throw new Error(`ibTargets: x has batch ${x.shape[0]}, yOneHot [${yOneHot.shape}]`);
  return { x: ccaTarget(x, 'gaussian', opts), y: ccaTarget(yOneHot, yKernel, opts), yKernel };
}

export interface IbLayerTerms {
  /** HSIC(T_l, X) in float64 (as computed on the host, no read-back needed). */
  hx: number;
  /** HSIC(T_l, Y) in float64. */
  hy: number;
}

export interface IbRegularizerResult {
  /** α Σ hx − β Σ hy as a differentiable scalar (gradients flow into every selected tap). */
  loss: tf.Scalar;
  /** The same value in float64. */
  value: number;
  /**
   * Per-layer terms as plain numbers, so that logging keeps no tensor alive. They are set
   * during the forward pass and stay valid after the loss tensor is disposed.
   */
  perLayer: Record<string, IbLayerTerms>;
}

/**
 * Eq. (1)/(2). X's and Y's kernels are factorised once and shared by all layers; each tap's
 * kernel is factorised once for both of its terms.
 */
export function ibRegularizer(args: IbRegularizerArgs): IbRegularizerResult {
  const { x, yOneHot, taps, layers, alpha, beta, yKernel } = args;
  const opts = { sigma: args.sigma ?? HSIC_SIGMA, eps: args.eps ?? HSIC_EPS };
  if (layers.length === 0) throw new Error('ibRegularizer: no layers selected');
  const m = x.shape[0];
  if (yOneHot.shape[0] !== m) throw new Error(`ibRegularizer: x has batch ${m}, yOneHot [${yOneHot.shape}]`);
  for (const name of layers) {
    const t = taps[name];
    if (!t) throw new Error(`ibRegularizer: no tap '${name}' (have: ${Object.keys(taps).join(', ')})`);
    if (t.shape[0] !== m) throw new Error(`ibRegularizer: tap '${name}' has shape [${t.shape}], batch is ${m}`);
  }
  const t = args.targets ?? ibTargets(x, yOneHot, yKernel, opts);
  if (t.yKernel !== yKernel || t.x.m !== m) throw new Error(`ibRegularizer: targets are for a ${t.yKernel} Y kernel and batch ${t.x.m}`);
  const targets = [t.x, t.y];
  const perLayer: Record<string, IbLayerTerms> = {};
  let value = 0;
  const loss = tf.tidy(() => {
    const weights = tf.tensor1d([alpha, -beta]);
    const terms = layers.map((name) => {
      const out = new Float64Array(2);
      const h = hsicCcaMany(taps[name], targets, opts, out);
      perLayer[name] = { hx: out[0], hy: out[1] };
      value += alpha * out[0] - beta * out[1];
      return tf.sum(tf.mul(h, weights));
    });
    return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
  });
  return { loss, value, perLayer };
}

/** Model facts resolveLayers needs (a Model satisfies it). */
export interface TapInfo {
  readonly arch: string;
  readonly tapNames: readonly string[];
}

/** VGG16's robust layers (method.md §1, Table 3): block5, fc1, fc2. */
const ROBUST: Record<string, readonly string[]> = {
  vgg16: ['block5', 'fc1', 'fc2'],
};

/**
 * The tap list for an `ib.layers` spec: `all` → every tap in network order; `robust` →
 * VGG16: block5, fc1, fc2 (the paper's choice); any other arch: its last two taps (for
 * ResNet18/WRN the last block output and the pooled feature vector) — our choice, the
 * paper does not name robust layers for them (method.md §9). A name list is validated
 * against the model's taps and kept in network order.
 */
export function resolveLayers(spec: 'all' | 'robust' | readonly string[], model: TapInfo): string[] {
  const valid = model.tapNames;
  const listValid = (): string => `valid taps of ${model.arch}: ${valid.join(', ')}`;
  if (spec === 'all') return [...valid];
  if (spec === 'robust') {
    const preset = ROBUST[model.arch];
    if (!preset) return valid.slice(Math.max(0, valid.length - 2));
    const missing = preset.filter((n) => !valid.includes(n));
    if (missing.length) throw new UserError(`ib.layers 'robust' needs taps ${missing.join(', ')}, which ${model.arch} lacks; ${listValid()}`);
    return [...preset];
  }
  if (spec.length === 0) throw new UserError(`ib.layers is an empty list; ${listValid()}`);
  const unknown = spec.filter((n) => !valid.includes(n));
  if (unknown.length) {
    throw new UserError(`ib.layers: unknown tap${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}; ${listValid()}`);
  }
  const dup = spec.filter((n, i) => spec.indexOf(n) !== i);
  if (dup.length) throw new UserError(`ib.layers lists ${dup.map((n) => `'${n}'`).join(', ')} more than once`);
  return valid.filter((n) => spec.includes(n));
}
