// Shared plumbing for the architectures: input checks, optional input normalisation, tap
// bookkeeping and disposal. Each architecture supplies only its layers and its `body`.
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import type { ForwardOptions, ForwardResult, Model, ModelOptions, NamedParam } from './types';
import { InputNormalizer } from './layers';

export interface ModelSpec {
  arch: string;
  opts: ModelOptions;
  tapNames: readonly string[];
  maskTap: string;
  params: NamedParam[];
  /** The body has randomness that ForwardOptions.sample turns on (dropout > 0). */
  stochastic?: boolean;
  /**
   * The network from the (normalised) input `x` to logits. `input` is the raw input (what the
   * channel-mask hook receives); `record(name, t)` stores a tap and returns the tensor the rest of
   * the network must use (the tap hook's, when one is given).
   */
  body: (x: tf.Tensor4D, input: tf.Tensor4D, opts: ForwardOptions, record: <T extends tf.Tensor>(name: string, t: T) => T) => tf.Tensor2D;
}

/** Validates the options every builder shares; `wrn` is the only one with width-free sizes and dropout. */
export function checkCommonOptions(arch: string, opts: ModelOptions): void {
  const { numClasses, inputShape, width } = opts;
  const isWrn = arch === 'wrn';
  if (isWrn && width !== 1) {
    throw new UserError(`wrn: model.width does not apply (its channels are 16·widen, 32·widen, 64·widen); set model.widen instead of width ${width}`);
  }
  if (!isWrn && opts.dropout !== 0) {
    throw new UserError(`${arch}: model.dropout applies only to wrn (the reference ${arch} has no dropout), got ${opts.dropout}`);
  }
  if (!Number.isInteger(numClasses) || numClasses < 1) {
    throw new UserError(`${arch}: the number of classes must be a positive integer, got ${numClasses}`);
  }
  if (inputShape.length !== 3 || !inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new UserError(`${arch}: input shape must be [height, width, channels] of positive integers, got [${inputShape}]`);
  }
  if (!(width > 0) || !Number.isFinite(width)) {
    throw new UserError(`${arch}: model.width must be a positive number, got ${width}`);
  }
}

export function createModel(spec: ModelSpec): Model {
  const { arch, opts, tapNames, maskTap, params, body } = spec;
  if (!tapNames.includes(maskTap)) throw new Error(`${arch}: mask tap '${maskTap}' is not a tap`);
  const inputShape = [opts.inputShape[0], opts.inputShape[1], opts.inputShape[2]] as const;
  const normalizer = opts.normalize ? new InputNormalizer(opts.normalize.mean, opts.normalize.std, inputShape[2]) : null;
  let disposed = false;

  const forward = (x: tf.Tensor4D, fwd: ForwardOptions): ForwardResult => {
    if (disposed) throw new Error(`${arch}: forward after dispose()`);
    if (x.rank !== 4 || x.shape[1] !== inputShape[0] || x.shape[2] !== inputShape[1] || x.shape[3] !== inputShape[2]) {
      throw new Error(`${arch}: expected input [batch, ${inputShape.join(', ')}], got [${x.shape}]`);
    }
    const taps: Record<string, tf.Tensor> = {};
    const record = <T extends tf.Tensor>(name: string, t: T): T => {
      const out = fwd.tapHook ? (fwd.tapHook(name, t) as T) : t;
      taps[name] = out;
      return out;
    };
    const h = normalizer ? normalizer.apply(x) : x;
    const logits = body(h, x, fwd, record);
    for (const name of tapNames) if (!(name in taps)) throw new Error(`${arch}: tap '${name}' was not recorded`);
    return { logits, taps };
  };

  return {
    arch,
    numClasses: opts.numClasses,
    inputShape,
    tapNames,
    maskTap,
    params,
    forward,
    stochastic: spec.stochastic ?? false,
    dispose(): void {
      if (disposed) return;
      disposed = true;
      for (const p of params) p.variable.dispose();
      normalizer?.dispose();
    },
  };
}
