// The IB regularizer of Eq. (1)/(2): Σ_{l∈S} α·HSIC(T_l, X) − β·HSIC(T_l, Y), with
// HSIC = normalised-CCA HSIC (docs/method.md §1.1), argument order as the reference code: the tap
// first (gaussian), X second (gaussian), Y second with `yKernel`.
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import {
  ccaManyFromGram,
  ccaTarget,
  ccaTargetFromKernel,
  hsicCcaMany,
  tapGradient,
  HSIC_EPS,
  HSIC_SIGMA,
  type CcaTarget,
  type HostGram,
  type KernelKind,
} from './hsic';
import { centredKernelFromGram } from './kernels';

export interface IbRegularizerArgs {
  /** X of HSIC(T, X): the clean batch by default (docs/method.md §1.3), any layout [m, ...]. */
  x: tf.Tensor;
  /** One-hot labels [m, nClasses] (width nClasses, not max(label)+1; see docs/method.md §1.1). */
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

/** ibTargets from the float32 Grams of X and of the one-hot Y (for reads made ahead of time). */
export function ibTargetsFromGrams(x: HostGram, y: HostGram, yKernel: KernelKind, opts: { sigma?: number; eps?: number } = {}): IbTargets {
  if (x.m !== y.m) throw new Error(`ibTargets: x has batch ${x.m}, yOneHot batch ${y.m}`);
  const sigma = opts.sigma ?? HSIC_SIGMA;
  const eps = opts.eps ?? HSIC_EPS;
  return {
    x: ccaTargetFromKernel(centredKernelFromGram(x.gram, x.m, x.d, 'gaussian', sigma), eps),
    y: ccaTargetFromKernel(centredKernelFromGram(y.gram, y.m, y.d, yKernel, sigma), eps),
    yKernel,
  };
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

/** The checks ibRegularizer makes on its arguments; returns the batch size. */
export function checkIbArgs(x: tf.Tensor, yOneHot: tf.Tensor2D, taps: Record<string, tf.Tensor>, layers: readonly string[]): number {
  if (layers.length === 0) throw new Error('ibRegularizer: no layers selected');
  const m = x.shape[0];
  if (yOneHot.shape[0] !== m) throw new Error(`ibRegularizer: x has batch ${m}, yOneHot [${yOneHot.shape}]`);
  for (const name of layers) {
    const t = taps[name];
    if (!t) throw new Error(`ibRegularizer: no tap '${name}' (have: ${Object.keys(taps).join(', ')})`);
    if (t.shape[0] !== m) throw new Error(`ibRegularizer: tap '${name}' has shape [${t.shape}], batch is ${m}`);
  }
  return m;
}

/** Σ_l sum([hx_l, hy_l] ∘ [α, −β]) as float32 ops: the loss tensor both paths build. */
function combineLayers(pairs: tf.Tensor1D[], alpha: number, beta: number): tf.Scalar {
  return tf.tidy(() => {
    const weights = tf.tensor1d([alpha, -beta]);
    const terms = pairs.map((h) => tf.sum(tf.mul(h, weights)));
    return (terms.length === 1 ? terms[0] : tf.addN(terms)) as tf.Scalar;
  });
}

/**
 * Eq. (1)/(2). X's and Y's kernels are factorised once and shared by all layers; each tap's
 * kernel is factorised once for both of its terms.
 */
export function ibRegularizer(args: IbRegularizerArgs): IbRegularizerResult {
  const { x, yOneHot, taps, layers, alpha, beta, yKernel } = args;
  const opts = { sigma: args.sigma ?? HSIC_SIGMA, eps: args.eps ?? HSIC_EPS };
  const m = checkIbArgs(x, yOneHot, taps, layers);
  const t = args.targets ?? ibTargets(x, yOneHot, yKernel, opts);
  if (t.yKernel !== yKernel || t.x.m !== m) throw new Error(`ibRegularizer: targets are for a ${t.yKernel} Y kernel and batch ${t.x.m}`);
  const targets = [t.x, t.y];
  const perLayer: Record<string, IbLayerTerms> = {};
  let value = 0;
  const loss = tf.tidy(() =>
    combineLayers(
      layers.map((name) => {
        const out = new Float64Array(2);
        const h = hsicCcaMany(taps[name], targets, opts, out);
        perLayer[name] = { hx: out[0], hy: out[1] };
        value += alpha * out[0] - beta * out[1];
        return h;
      }),
      alpha,
      beta,
    ),
  );
  return { loss, value, perLayer };
}

/** One IB call (Eq. 1/2) evaluated on the host ahead of the gradient tape. */
export interface IbHostTerms {
  /** α Σ hx − β Σ hy in float64. */
  value: number;
  perLayer: Record<string, IbLayerTerms>;
  /** Per layer, the operator L with ∂(value)/∂Zc_l = L·Zc_l (float64 m×m). */
  operators: Record<string, Float64Array>;
}

/**
 * ibRegularizer's numbers from the taps' float32 Grams (read to the host before the tape
 * opens): the same host math, so the same values and gradient operators.
 */
export function ibTermsFromGrams(
  grams: Record<string, HostGram>,
  targets: IbTargets,
  layers: readonly string[],
  alpha: number,
  beta: number,
  opts: { sigma?: number; eps?: number } = {},
): IbHostTerms {
  // The upstream gradient of [hx, hy] inside ibRegularizer: [α, −β] rounded to float32.
  const weights = Float32Array.of(alpha, -beta);
  const perLayer: Record<string, IbLayerTerms> = {};
  const operators: Record<string, Float64Array> = {};
  let value = 0;
  for (const name of layers) {
    const host = ccaManyFromGram(grams[name], [targets.x, targets.y], opts);
    const [hx, hy] = host.values;
    perLayer[name] = { hx, hy };
    value += alpha * hx - beta * hy;
    operators[name] = host.gradOperator(weights);
  }
  return { value, perLayer, operators };
}

/**
 * The IB loss of a call computed by ibTermsFromGrams, as a tensor of the taps: its value is
 * built from the host numbers exactly as ibRegularizer builds its own, its gradient is
 * ibRegularizer's (L·Zc per tap, times the upstream gradient). Nothing is read in between,
 * so it works inside a gradient tape on any backend.
 */
export function ibLossFromHost(taps: Record<string, tf.Tensor>, layers: readonly string[], host: IbHostTerms, alpha: number, beta: number): tf.Scalar {
  const op = tf.customGrad((...args: unknown[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save(args.slice(0, -1) as tf.Tensor[]);
    const value = tf.tidy(() =>
      combineLayers(
        layers.map((name) => tf.tensor1d([host.perLayer[name].hx, host.perLayer[name].hy])),
        alpha,
        beta,
      ),
    );
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((t, i) => tf.tidy(() => tf.mul(tapGradient(t, host.operators[layers[i]]), dy))),
    };
  });
  return op(...layers.map((name) => taps[name])) as tf.Scalar;
}

/** Model facts resolveLayers needs (a Model satisfies it). */
export interface TapInfo {
  readonly arch: string;
  readonly tapNames: readonly string[];
}

/** VGG16's robust layers (docs/method.md §1, Table 3): block5, fc1, fc2. */
const ROBUST: Record<string, readonly string[]> = {
  vgg16: ['block5', 'fc1', 'fc2'],
};

/**
 * The tap list for an `ib.layers` spec: `all` → every tap in network order; `robust` →
 * VGG16: block5, fc1, fc2 (the paper's choice); any other arch: its last two taps (for
 * ResNet18/WRN the last block output and the pooled feature vector) — our choice, the
 * paper does not name robust layers for them (docs/method.md §9). A name list is validated
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
