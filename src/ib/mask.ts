// Feature-channel mask of Eq. (3) (docs/method.md §2): score every channel f_c of the mask tap by
// I_y(c) = HSIC_cca(f_c, Y) (and, for the code rule, I_x(c) = HSIC_cca(X_in, f_c)), all
// kernels gaussian with σ = 5 and d = h·w for a channel, then zero a set of channels.
//
//   rule 'paper': drop the k = ⌊drop·C⌋ lowest-I_y channels (Eq. 3 / Algorithm 1).
//   rule 'code':  drop the `lowY` lowest-I_y and the `highX` highest-I_x channels (union),
//                 the authors' fc_filter.
// skipLastChannel reproduces the reference's off-by-one: only channels 0..C−2 are scored,
// so the last channel can never be dropped (it applies to both rules here; with the paper
// rule k is still ⌊drop·C⌋ of the full width C).
//
// Cost: the labels' and the input's R matrices are factorised once per call and shared by
// all channels; each channel then costs one m×m Cholesky inverse on the host (≈ m³/2).
// Channel distances come straight from the feature values for 1×1 maps (exact in float64)
// and from one batched [C, m, m] Gram matmul on the backend otherwise.
import { tf } from '../engine/tf';
import { ccaTargetFromKernel, centredGramTensor, type CcaTarget, type HostGram } from './hsic';
import { centredKernelFromGram, gaussianMFromGram, hostCentredGram, HSIC_EPS, HSIC_SIGMA } from './kernels';
import { choleskyInPlace, dot64, dotRange, doubleCentre, spdInverse } from './linalg64';

export interface MaskRuleOptions {
  rule: 'paper' | 'code';
  /** paper rule: fraction of the C channels to drop (k = ⌊drop·C⌋). */
  drop: number;
  /** code rule: number of lowest-I_y channels to drop. */
  lowY: number;
  /** code rule: number of highest-I_x channels to drop. */
  highX: number;
  /** Score channels 0..C−2 only (the reference code's off-by-one). */
  skipLastChannel: boolean;
}

export interface ChannelMaskResult {
  /** 1 = keep, 0 = drop; one entry per channel (last axis of the features). */
  mask: Float32Array;
  /** Dropped channel indices, ascending. */
  dropped: number[];
  /** Scores of the scored channels (length C, or C−1 with skipLastChannel). */
  scores: { iy: Float64Array; ix?: Float64Array };
  /** code rule: the lowest-I_y and highest-I_x picks, in pick order. */
  lowY?: number[];
  highX?: number[];
  /** paper rule: the largest dropped I_y (null when nothing is dropped). */
  threshold?: number | null;
}

export interface ScoreOptions {
  sigma?: number;
  eps?: number;
}

/**
 * Y's R matrix (gaussian kernel on one-hot labels of width numClasses, σ-scaled by that
 * width), built on the host together with its low-rank form: K = e·11ᵀ + (1−e)·E Eᵀ with
 * e = exp(−1/(σ²k)), so H K H = F Fᵀ with F = √(1−e)·H E, and R = F (FᵀF + λI)⁻¹ Fᵀ.
 */
export function labelTarget(labels: ArrayLike<number>, numClasses: number, opts: ScoreOptions = {}): CcaTarget {
  const m = labels.length;
  const k = numClasses;
  const sigma = opts.sigma ?? HSIC_SIGMA;
  const lambda = (opts.eps ?? HSIC_EPS) * m;
  const onehot = new Float64Array(m * k);
  for (let i = 0; i < m; i++) {
    const y = labels[i];
    if (!Number.isInteger(y) || y < 0 || y >= k) throw new Error(`label ${y} at ${i} is outside 0..${k - 1}`);
    onehot[i * k + y] = 1;
  }
  const full = ccaTargetFromKernel(centredKernelFromGram(hostCentredGram(onehot, m, k), m, k, 'gaussian', sigma), opts.eps ?? HSIC_EPS);
  const scale = Math.sqrt(-Math.expm1(-1 / (sigma * sigma * k)));
  const ft = new Float64Array(k * m); // Fᵀ: row a = √(1−e)·(E_a − mean(E_a))
  for (let a = 0; a < k; a++) {
    let mean = 0;
    for (let i = 0; i < m; i++) mean += onehot[i * k + a];
    mean /= m;
    for (let i = 0; i < m; i++) ft[a * m + i] = scale * (onehot[i * k + a] - mean);
  }
  const ftf = new Float64Array(k * k);
  for (let a = 0; a < k; a++) {
    for (let b = 0; b < k; b++) {
      let s = 0;
      for (let i = 0; i < m; i++) s += ft[a * m + i] * ft[b * m + i];
      ftf[a * k + b] = s + (a === b ? lambda : 0);
    }
  }
  const n = spdInverse(ftf, k, new Float64Array(k * k), new Float64Array(k * k));
  return { ...full, lowRank: { rank: k, ft, n } };
}

/** Shape facts of a mask tap's features: m examples, C channels of h·w values each. */
interface ChannelLayout {
  m: number;
  C: number;
  hw: number;
}

function channelLayout(features: tf.Tensor): ChannelLayout {
  const m = features.shape[0];
  const C = features.shape[features.rank - 1];
  return { m, C, hw: features.size / (m * C) };
}

/**
 * What channel scores are computed from, on the backend: for 1×1 maps the features [m, C]
 * themselves (distances exact in float64 on the host), otherwise every channel's Gram of its
 * centred maps [C, m, m] in one batched matmul. The caller disposes it.
 */
export function channelReadTensor(features: tf.Tensor): tf.Tensor {
  const { m, C, hw } = channelLayout(features);
  if (hw === 1) return tf.reshape(features, [m, C]);
  return tf.tidy(() => {
    const f = tf.transpose(tf.reshape(tf.cast(features, 'float32'), [m, hw, C]), [2, 0, 1]); // [C, m, hw]
    const fc = tf.sub(f, tf.mean(f, 1, true));
    return tf.matMul(fc, fc, false, true); // [C, m, m]; batched, transposeB was not the slow path here
  });
}

/**
 * HSIC_cca(f_c, T) for every scored channel c and every target T (each R_T shared across
 * channels). features: [m, h, w, C] (NHWC) or [m, C]. Returns one Float64Array per target.
 */
export function channelScores(features: tf.Tensor, targets: readonly CcaTarget[], nChannels: number, opts: ScoreOptions = {}): Float64Array[] {
  if (features.rank < 2) throw new Error(`channelScores: features [${features.shape}] cannot give ${nChannels} channels`);
  const t = channelReadTensor(features);
  const values = t.dataSync();
  t.dispose();
  return channelScoresFromHost(values, channelLayout(features), targets, nChannels, opts);
}

/** channelScores from the host copy of channelReadTensor(features). */
export function channelScoresFromHost(
  values: ArrayLike<number>,
  layout: ChannelLayout,
  targets: readonly CcaTarget[],
  nChannels: number,
  opts: ScoreOptions = {},
): Float64Array[] {
  const { m, C, hw } = layout;
  if (nChannels > C) throw new Error(`channelScores: ${C} channels cannot give ${nChannels}`);
  for (const t of targets) if (t.m !== m) throw new Error(`channelScores: target batch ${t.m} != feature batch ${m}`);
  const sigma = opts.sigma ?? HSIC_SIGMA;
  const lambda = (opts.eps ?? HSIC_EPS) * m;
  const v = 2 * sigma * sigma * hw;
  const n = m * m;

  const fillM = hw === 1 ? exactOneByOne(values, m, C, v) : fromBatchedGram(values, m, v);
  const s = new Float64Array(n);
  const ainv = new Float64Array(n);
  const work = new Float64Array(n);
  const rowMean = new Float64Array(m);
  const traces = targets.map((t) => trace(t.r, m));
  const out = targets.map(() => new Float64Array(nChannels));
  const lowRank = targets.every((t) => t.lowRank !== undefined);
  const vt = lowRank ? new Float64Array(Math.max(...targets.map((t) => t.lowRank!.rank)) * m) : work;
  for (let c = 0; c < nChannels; c++) {
    fillM(c, s);
    doubleCentre(s, m, s, rowMean);
    for (let i = 0; i < m; i++) s[i * m + i] += lambda;
    if (lowRank) {
      work.set(s);
      if (choleskyInPlace(s, m) < 0) {
        for (let t = 0; t < targets.length; t++) out[t][c] = traces[t] - lambda * lowRankTrace(s, m, targets[t].lowRank!, vt);
        continue;
      }
      s.set(work); // not positive definite after all (or NaN): take the general path
    }
    spdInverse(s, m, ainv, work);
    // tr(R_c R_T) with R_c = I − λA⁻¹: tr(R_T) − λ Σ_ij A⁻¹_ij R_T,ij
    for (let t = 0; t < targets.length; t++) {
      const r = targets[t].r;
      out[t][c] = traces[t] - lambda * dot64(ainv, r, n);
    }
  }
  return out;
}

/**
 * tr(A⁻¹ F N Fᵀ) = Σ_ab N_ab (V_a·V_b) with V = L⁻¹F (A = L Lᵀ, lower factor in `l`);
 * Vᵀ is built row by row in `vt` by forward substitution.
 */
function lowRankTrace(l: Float64Array, m: number, lr: NonNullable<CcaTarget['lowRank']>, vt: Float64Array): number {
  const { rank, ft, n } = lr;
  for (let a = 0; a < rank; a++) {
    const o = a * m;
    for (let i = 0; i < m; i++) {
      const oi = i * m;
      vt[o + i] = (ft[o + i] - dotRange(l, oi, vt, o, i)) / l[oi + i];
    }
  }
  let acc = 0;
  for (let a = 0; a < rank; a++) {
    for (let b = a; b < rank; b++) {
      acc += (a === b ? 1 : 2) * n[a * rank + b] * dotRange(vt, a * m, vt, b * m, m);
    }
  }
  return acc;
}

function trace(a: Float64Array, m: number): number {
  let s = 0;
  for (let i = 0; i < m; i++) s += a[i * m + i];
  return s;
}

/** 1×1 channels: D_ij = (f_ic − f_jc)², exact from the float32 values f [m, C]. */
function exactOneByOne(f: ArrayLike<number>, m: number, C: number, v: number): (c: number, out: Float64Array) => void {
  const col = new Float64Array(m);
  return (c, out) => {
    for (let i = 0; i < m; i++) col[i] = f[i * C + c];
    for (let i = 0; i < m; i++) {
      const fi = col[i];
      out[i * m + i] = 0;
      for (let j = i + 1; j < m; j++) {
        const dlt = fi - col[j];
        const mij = Math.expm1(-(dlt * dlt) / v);
        out[i * m + j] = mij;
        out[j * m + i] = mij;
      }
    }
  };
}

/** h·w > 1: M = expm1(−D/v) of channel c from the per-channel Grams g [C, m, m]. */
function fromBatchedGram(g: ArrayLike<number>, m: number, v: number): (c: number, out: Float64Array) => void {
  return (c, out) => {
    gaussianMFromGram(g, c * m * m, m, v, out);
  };
}

/** Indices sorted by ascending value, ties by ascending index (a stable sort); NaN last. */
function ascendingOrder(values: ArrayLike<number>): number[] {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  const key = (i: number): number => (Number.isNaN(values[i]) ? Infinity : values[i]);
  return idx.sort((a, b) => key(a) - key(b) || a - b);
}

/** Eq. (3), paper reading: drop the ⌊drop·C⌋ lowest-I_y channels among the scored ones. */
export function selectPaperRule(iy: ArrayLike<number>, C: number, drop: number): { dropped: number[]; threshold: number | null } {
  const k = Math.min(Math.floor(drop * C), iy.length);
  const order = ascendingOrder(iy);
  const dropped = order.slice(0, k).sort((a, b) => a - b);
  return { dropped, threshold: k > 0 ? iy[order[k - 1]] : null };
}

/**
 * The reference's fc_filter: the `lowY` lowest-I_y channels (ties → lower index first) and
 * the `highX` highest-I_x channels (taken from the end of a stable ascending sort, so ties →
 * higher index first), union.
 */
export function selectCodeRule(
  ix: ArrayLike<number>,
  iy: ArrayLike<number>,
  lowY: number,
  highX: number,
): { lowY: number[]; highX: number[]; dropped: number[] } {
  const n = iy.length;
  const byY = ascendingOrder(iy);
  const byX = ascendingOrder(ix);
  const low = byY.slice(0, Math.min(lowY, n));
  const high: number[] = [];
  for (let i = 0; i < Math.min(highX, n); i++) high.push(byX[n - 1 - i]);
  const dropped = [...new Set([...low, ...high])].sort((a, b) => a - b);
  return { lowY: low, highX: high, dropped };
}

export interface ChannelMaskArgs extends ScoreOptions {
  /** The mask tap's output: [m, h, w, C] (NHWC) or [m, C]. */
  features: tf.Tensor;
  /** The network input of that forward pass (x_adv under adversarial training), [m, ...]. */
  input: tf.Tensor;
  labels: ArrayLike<number>;
  numClasses: number;
  rule: MaskRuleOptions;
}

/** Host copies of everything a channel mask is computed from (see maskReadout). */
export interface MaskHostInputs {
  layout: ChannelLayout;
  /** channelReadTensor(features), read. */
  channels: ArrayLike<number>;
  /** Code rule: the float32 Gram of the network input (I_x's target); null for the paper rule. */
  input: HostGram | null;
}

/** The backend tensors a mask needs read (owned by the caller), and the shapes to read them with. */
export interface MaskReadout {
  layout: ChannelLayout;
  channels: tf.Tensor;
  input: tf.Tensor | null;
  inputWidth: number;
}

export function maskReadout(features: tf.Tensor, input: tf.Tensor, rule: MaskRuleOptions): MaskReadout {
  const layout = channelLayout(features);
  if (features.rank < 2) throw new Error(`channel mask: features [${features.shape}] have no channel axis`);
  if (input.shape[0] !== layout.m) throw new Error(`channel mask: features batch ${layout.m}, input batch ${input.shape[0]}`);
  return {
    layout,
    channels: channelReadTensor(features),
    input: rule.rule === 'code' ? centredGramTensor(input) : null,
    inputWidth: input.size / layout.m,
  };
}

/** Reads a readout with `dataSync` (backends that can) and disposes its tensors. */
export function readMaskSync(r: MaskReadout): MaskHostInputs {
  try {
    return {
      layout: r.layout,
      channels: r.channels.dataSync(),
      input: r.input ? { gram: r.input.dataSync() as Float32Array, m: r.layout.m, d: r.inputWidth } : null,
    };
  } finally {
    tf.dispose([r.channels, ...(r.input ? [r.input] : [])]);
  }
}

/** Reads a readout with `await data()` (any backend) and disposes its tensors. */
export async function readMaskAsync(r: MaskReadout): Promise<MaskHostInputs> {
  try {
    const [channels, input] = await Promise.all([r.channels.data(), r.input ? r.input.data() : Promise.resolve(null)]);
    return { layout: r.layout, channels, input: input ? { gram: input as Float32Array, m: r.layout.m, d: r.inputWidth } : null };
  } finally {
    tf.dispose([r.channels, ...(r.input ? [r.input] : [])]);
  }
}

/** Scores the channels and applies the rule. Reads to the host; records no gradient. */
export function computeChannelMask(args: ChannelMaskArgs, yTarget?: CcaTarget): ChannelMaskResult {
  return channelMaskFromHost(readMaskSync(maskReadout(args.features, args.input, args.rule)), args, yTarget);
}

/** computeChannelMask from host copies (pure): the rule applied to the channel scores. */
export function channelMaskFromHost(
  host: MaskHostInputs,
  args: Pick<ChannelMaskArgs, 'labels' | 'numClasses' | 'rule' | 'sigma' | 'eps'>,
  yTarget?: CcaTarget,
): ChannelMaskResult {
  const { rule } = args;
  const { m, C } = host.layout;
  if (args.labels.length !== m) throw new Error(`channel mask: features batch ${m}, ${args.labels.length} labels`);
  const n = rule.skipLastChannel ? C - 1 : C;
  const opts = { sigma: args.sigma, eps: args.eps };
  const ty = yTarget ?? labelTarget(args.labels, args.numClasses, opts);
  const mask = new Float32Array(C).fill(1);
  let result: ChannelMaskResult;
  if (rule.rule === 'paper') {
    const [iy] = channelScoresFromHost(host.channels, host.layout, [ty], n, opts);
    const sel = selectPaperRule(iy, C, rule.drop);
    result = { mask, dropped: sel.dropped, scores: { iy }, threshold: sel.threshold };
  } else {
    if (!host.input) throw new Error('channel mask: the code rule needs the input Gram');
    const g = host.input;
    const tx = ccaTargetFromKernel(centredKernelFromGram(g.gram, g.m, g.d, 'gaussian', opts.sigma ?? HSIC_SIGMA), opts.eps ?? HSIC_EPS);
    const [iy, ix] = channelScoresFromHost(host.channels, host.layout, [ty, tx], n, opts);
    const sel = selectCodeRule(ix, iy, rule.lowY, rule.highX);
    result = { mask, dropped: sel.dropped, scores: { iy, ix }, lowY: sel.lowY, highX: sel.highX };
  }
  for (const c of result.dropped) mask[c] = 0;
  return result;
}

export interface ChannelMaskHookOptions extends ScoreOptions {
  /** Labels of the batch the hook will see. */
  labels: ArrayLike<number>;
  numClasses: number;
  rule: MaskRuleOptions;
  /** Receives every computed mask (for logging). */
  onResult?: (result: ChannelMaskResult) => void;
}

/**
 * A `ForwardOptions.channelMask` hook for one batch: computes the mask from the features it
 * is given and returns it as a constant {0,1} tensor [C] (created in the caller's scope).
 */
export function makeChannelMaskHook(opts: ChannelMaskHookOptions): (features: tf.Tensor, input: tf.Tensor4D) => tf.Tensor1D {
  const yTarget = labelTarget(opts.labels, opts.numClasses, opts);
  return (features, input) => {
    const res = computeChannelMask({ ...opts, features, input }, yTarget);
    opts.onResult?.(res);
    return tf.tensor1d(res.mask);
  };
}
