// Building blocks with PyTorch semantics on NHWC tensors. Parameters live in tf.Variables made
// by a ParamBuilder; `apply` only creates ordinary tensors (the caller's tf.tidy frees them).
//
// Plain differentiable ops, no tf.fused.* and no tf.customGrad: fused conv's gradient always
// computes the filter gradient too (wasted in attacks, which only need d/dx). The exception is
// BatchNorm, which runs as one native kernel with a registered gradient (+ fused ReLU, see
// engine/native/batchnorm.ts) when the addon serves the wasm backend, and as plain ops otherwise.
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import type { Rng } from '../engine/rng';
import { ParamBuilder, defaultBound } from './params';
import { nativeBatchNorm, nativeBatchNormActive } from '../engine/native';

export interface Conv2dOptions {
  kernel: number;
  stride?: number;
  /** Symmetric zero padding as in nn.Conv2d(padding=…); default (kernel − 1)/2. */
  padding?: number;
  bias?: boolean;
}

/** nn.Conv2d. Weight [kh, kw, in, out] (PyTorch [out, in, kh, kw]). */
export class Conv2d {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;
  readonly stride: number;
  readonly padding: number;

  constructor(pb: ParamBuilder, name: string, inChannels: number, outChannels: number, opts: Conv2dOptions) {
    const k = opts.kernel;
    const bound = defaultBound(inChannels * k * k);
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? (k - 1) / 2;
    this.weight = pb.uniform(`${name}.weight`, [k, k, inChannels, outChannels], bound, 'conv');
    this.bias = opts.bias ? pb.uniform(`${name}.bias`, [outChannels], bound, 'vector') : null;
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    // A numeric pad is PyTorch's symmetric padding; tfjs 'same' pads bottom/right first at stride 2.
    const y = tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, this.padding);
    return this.bias ? tf.add(y, this.bias) : y;
  }
}

/** nn.Linear. Weight [in, out] (PyTorch [out, in]); y = x W + b. */
export class Linear {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;

  constructor(pb: ParamBuilder, name: string, inFeatures: number, outFeatures: number) {
    const bound = defaultBound(inFeatures);
    this.weight = pb.uniform(`${name}.weight`, [inFeatures, outFeatures], bound, 'linear');
    this.bias = pb.uniform(`${name}.bias`, [outFeatures], bound, 'vector');
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    return tf.add(tf.matMul(x, this.weight as tf.Tensor2D), this.bias);
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** PyTorch meaning: running ← (1 − momentum)·running + momentum·batch. */
  momentum?: number;
}

/**
 * nn.BatchNorm1d / nn.BatchNorm2d over the last axis (NHWC or [N, C]).
 * Training: normalise with the batch mean and the biased batch variance, and update the running
 * statistics in place with the unbiased variance (n/(n−1)), n = values per channel.
 * Eval: normalise with the running statistics.
 */
export class BatchNorm {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  readonly eps: number;
  readonly momentum: number;

  constructor(
    pb: ParamBuilder,
    readonly name: string,
    readonly channels: number,
    opts: BatchNormOptions = {},
  ) {
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    this.weight = pb.constant(`${name}.weight`, [channels], 1, true);
    this.bias = pb.constant(`${name}.bias`, [channels], 0, true);
    this.runningMean = pb.constant(`${name}.running_mean`, [channels], 0, false);
    this.runningVar = pb.constant(`${name}.running_var`, [channels], 1, false);
  }

  apply<T extends tf.Tensor>(x: T, training: boolean): T {
    return this.forward(x, training, false);
  }

  /** relu(apply(x)), fused into one kernel where the native kernels serve it. */
  applyRelu<T extends tf.Tensor>(x: T, training: boolean): T {
    return this.forward(x, training, true);
  }

  private forward<T extends tf.Tensor>(x: T, training: boolean, relu: boolean): T {
    const n = x.size / this.channels;
    if (training && n < 2) {
      throw new UserError(
        `BatchNorm '${this.name}' in training mode needs more than 1 value per channel, got input shape [${x.shape}] (use a batch size of at least 2)`,
      );
    }
    const out = batchNorm(x, this.weight, this.bias, this.runningMean, this.runningVar, { eps: this.eps, training, relu });
    if (training) this.updateRunningStats(out.mean, out.variance, n);
    return out.y;
  }

  private updateRunningStats(mean: tf.Tensor, biasedVar: tf.Tensor, n: number): void {
    const m = this.momentum;
    // variable.assign keeps its own reference, so the caller's tidy may free these tensors.
    this.runningMean.assign(tf.add(tf.mul(this.runningMean, 1 - m), tf.mul(mean, m)));
    this.runningVar.assign(tf.add(tf.mul(this.runningVar, 1 - m), tf.mul(biasedVar, (m * n) / (n - 1))));
  }
}

/**
 * [relu](batch norm of x over its last axis): with the batch's mean and biased variance in
 * training (returned, for the running statistics), with `mean`/`variance` in eval. One native
 * kernel where the addon serves the wasm backend, plain tfjs ops elsewhere.
 */
export function batchNorm<T extends tf.Tensor>(
  x: T,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  opts: { eps: number; training: boolean; relu: boolean },
): { y: T; mean: tf.Tensor; variance: tf.Tensor } {
  if (nativeBatchNormActive() && x.dtype === 'float32') {
    const out = nativeBatchNorm(x, gamma, beta, mean, variance, opts);
    return { y: out.y as T, mean: out.mean, variance: out.variance };
  }
  let m = mean;
  let v = variance;
  if (opts.training) {
    const c = x.shape[x.rank - 1];
    // Reducing the leading axis of [n, C] is ~2× faster on wasm than axes [0, 1, 2] of NHWC.
    // Not tf.moments (its float32→float32 cast copies on wasm) nor tf.squaredDifference (its
    // gradient does not reduce the broadcast mean).
    const rows = tf.reshape(x, [x.size / c, c]);
    m = tf.mean(rows, 0);
    v = tf.mean(tf.square(tf.sub(rows, m)), 0);
  }
  // y = (x − μ)·γ/√(σ²+ε) + β, written as x·a + (β − μ·a): two full-size ops.
  const a = tf.mul(gamma, tf.rsqrt(tf.add(v, opts.eps)));
  const shift = tf.sub(beta, tf.mul(m, a));
  const y = tf.add(tf.mul(x, a), shift) as T;
  return { y: opts.relu ? tf.relu(y) : y, mean: m, variance: v };
}

export function relu<T extends tf.Tensor>(x: T): T {
  return tf.relu(x);
}

/** nn.MaxPool2d(2, 2): floor of odd sizes, as PyTorch. */
export function maxPool2(x: tf.Tensor4D): tf.Tensor4D {
  return tf.maxPool(x, 2, 2, 'valid');
}

/** Whether a 2×2/2 pool still has a full window (spatial size ≥ 2 both ways). */
export function canPool2(x: tf.Tensor4D): boolean {
  return x.shape[1] >= 2 && x.shape[2] >= 2;
}

/** AdaptiveAvgPool2d(1) + flatten: [N, H, W, C] → [N, C]. */
export function globalAvgPool(x: tf.Tensor4D): tf.Tensor2D {
  return tf.mean(x, [1, 2]) as tf.Tensor2D;
}

/**
 * nn.Dropout(p): zero with probability p and scale by 1/(1−p), only in training, or when a
 * sampling generator is given (ForwardOptions.sample: the mask then comes from it). Seeded.
 */
export class Dropout {
  constructor(
    readonly rate: number,
    private readonly rng: Rng,
  ) {}

  apply<T extends tf.Tensor>(x: T, training: boolean, sample?: Rng): T {
    if (this.rate === 0 || (!training && !sample)) return x;
    return tf.dropout(x, this.rate, undefined, (sample ?? this.rng).seed()) as T;
  }
}

/** Per-channel (x − mean)/std before the first layer (`model.normalize`). */
export class InputNormalizer {
  private readonly scale: tf.Tensor1D;
  private readonly shift: tf.Tensor1D;

  constructor(mean: number[], std: number[], channels: number) {
    if (mean.length !== channels || std.length !== channels) {
      throw new UserError(
        `model.normalize needs one mean and one std per input channel (${channels}), got ${mean.length} means and ${std.length} stds`,
      );
    }
    this.scale = tf.tensor1d(std.map((s) => 1 / s));
    this.shift = tf.tensor1d(mean.map((m, i) => -m / std[i]));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.add(tf.mul(x, this.scale), this.shift);
  }

  dispose(): void {
    this.scale.dispose();
    this.shift.dispose();
  }
}

/**
 * Eq. (3): multiply the features by the hook's {0,1} channel mask. The mask is copied through
 * the host so it is a constant for the gradient tape, however the hook computed it — except on
 * backends that cannot read synchronously (webgpu), where ibrar's own hooks hand over masks
 * built from host values, constants already.
 */
export function applyChannelMask<T extends tf.Tensor>(
  features: T,
  input: tf.Tensor4D,
  hook: ((features: tf.Tensor, input: tf.Tensor4D) => tf.Tensor1D | null) | undefined,
): T {
  if (!hook) return features;
  const mask = hook(features, input);
  if (mask === null) return features;
  const channels = features.shape[features.rank - 1];
  if (mask.rank !== 1 || mask.size !== channels) {
    throw new Error(`channel mask must have shape [${channels}], got [${mask.shape}]`);
  }
  // The webgpu test is engine/reads.ts's backendReadsSync(), inlined to keep this file's imports as they are.
  const constant = tf.getBackend() === 'webgpu' ? mask : tf.tensor1d(Float32Array.from(mask.dataSync()));
  return tf.mul(features, constant);
}
