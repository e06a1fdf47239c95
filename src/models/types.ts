// The contract every architecture implements. Models are explicit parameter modules:
// no tfjs-layers, so that the trainer, the IB terms and the attacks see plain tensors.
import type { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';

/** How a parameter is laid out, so checkpoints can export PyTorch layouts. */
export type ParamKind =
  | 'conv' //   tfjs [kh, kw, in, out]  ↔ PyTorch [out, in, kh, kw]
  | 'linear' // tfjs [in, out]          ↔ PyTorch [out, in]
  | 'vector'; // biases, BN scale/shift/running stats: same layout in both

export interface NamedParam {
  /** Stable dotted name, e.g. `block1.conv1.weight`, `fc1.bn.running_mean`. */
  name: string;
  variable: tf.Variable;
  kind: ParamKind;
  /** false for BatchNorm running statistics (buffers). */
  trainable: boolean;
}

export interface ForwardOptions {
  /**
   * true: BatchNorm uses batch statistics and updates its running statistics in place
   * (PyTorch train mode, momentum 0.1, unbiased running variance); false: running statistics.
   */
  training: boolean;
  /**
   * Channel-mask hook (Eq. 3), called with the output of the model's `maskTap` layer before
   * it is recorded as a tap or used downstream. Return a {0,1} vector with one entry per
   * channel (last axis) to multiply in as a constant, or null to leave the features alone.
   */
  channelMask?: (features: tf.Tensor, input: tf.Tensor4D) => tf.Tensor1D | null;
  /**
   * Wraps each tap before the rest of the network uses it (it must return a tensor of the same
   * shape and value): the diagnostics use an identity with a custom gradient to see the gradient
   * reaching each layer's output.
   */
  tapHook?: (name: string, t: tf.Tensor) => tf.Tensor;
  /**
   * The model's randomness on, drawn from this generator, whatever `training` says: dropout is
   * active and a VIB head samples fresh noise instead of its fixed evaluation noise
   * (`training` still decides BatchNorm). Attacks use it for EOT (attacks/eot.ts).
   */
  sample?: Rng;
}

export interface ForwardResult {
  /** Unnormalised class scores [batch, numClasses]. */
  logits: tf.Tensor2D;
  /** Named hidden outputs (post-activation), keyed by the names in `tapNames`. */
  taps: Record<string, tf.Tensor>;
}

export interface Model {
  readonly arch: string;
  readonly numClasses: number;
  /** [height, width, channels] of one input image (NHWC, pixels in [0,1]). */
  readonly inputShape: readonly [number, number, number];
  /** Tap names in network order. */
  readonly tapNames: readonly string[];
  /** The last convolutional block's tap: where the channel mask attaches. */
  readonly maskTap: string;
  /** Every parameter and buffer, trainable first, in a stable order. */
  readonly params: readonly NamedParam[];
  forward(x: tf.Tensor4D, opts: ForwardOptions): ForwardResult;
  /** true when `forward` has randomness that ForwardOptions.sample turns on (dropout > 0, VIB). */
  readonly stochastic?: boolean;
  dispose(): void;
}

export interface ModelOptions {
  numClasses: number;
  inputShape: readonly [number, number, number];
  /** Channel/width multiplier (vgg16, resnet18, small-cnn). */
  width: number;
  /** WRN depth (6n+4). */
  depth: number;
  /** WRN widen factor. */
  widen: number;
  /** WRN dropout (paper code: 0.3); only active when training. */
  dropout: number;
  /** Optional per-channel input normalisation inside the model (off by default). */
  normalize: { mean: number[]; std: number[] } | null;
}

export type ModelBuilder = (opts: ModelOptions, rng: Rng) => Model;
