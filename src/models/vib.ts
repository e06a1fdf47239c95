// The VIB baseline's head (Alemi et al. 2017; docs/method.md §6): a stochastic encoder on the base
// network's last tap and a linear decoder,
//   [μ, s] = Linear(d, 2K)(T_last),  σ = softplus(s − 5),  z = μ + σ·ε,  logits = Linear(K, C)(z).
// Training draws one sample per example. Evaluation (training: false) returns
//   log( (1/S) Σ_s softmax(dec(μ + σ·ε_s)) ),  S = `samples` (12),
// so every attack differentiates through the S-sample average. The S noise vectors ε_s are
// fixed at build time (from the model's seed), which makes the evaluated classifier a
// deterministic function of x alone: clean accuracy, attacks and t-SNE all see the same model,
// independent of batch composition or call order. ForwardOptions.sample turns the randomness
// back on (fresh noise per example and per call, the deployed stochastic classifier): the
// attacks' EOT averages gradients over such forwards.
//
// The wrapper keeps the base model's name (`arch`), so checkpoints, robust-layer presets and
// tap lists stay those of the base; the base's own classifier is kept (and checkpointed) but
// unused.
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { UserError } from '../errors';
import type { ForwardOptions, ForwardResult, Model } from './types';
import { Linear } from './layers';
import { ParamBuilder } from './params';

export interface VibSettings {
  /** Bottleneck width K (Alemi et al.: 256). */
  k: number;
  /** Softmaxes averaged at evaluation (12). */
  samples: number;
  /** Weight β of the KL term (1e-3); used by the `vib` objective. */
  beta: number;
}

export const VIB_DEFAULTS: VibSettings = { k: 256, samples: 12, beta: 1e-3 };

export interface VibEncoding {
  /** Mean of q(z|x), [n, K]. */
  mu: tf.Tensor2D;
  /** Standard deviation softplus(s − 5), [n, K]. */
  sigma: tf.Tensor2D;
  /** The base network's taps of the same forward. */
  taps: Record<string, tf.Tensor>;
}

export interface VibModel extends Model {
  readonly vib: VibSettings;
  /** The tap the encoder reads (the base's last tap). */
  readonly encoderTap: string;
  /** Base trunk → q(z|x). */
  encode(x: tf.Tensor4D, opts: ForwardOptions): VibEncoding;
  /** Decoder logits for bottleneck samples z [n, K]. */
  decode(z: tf.Tensor2D): tf.Tensor2D;
  /** The fixed evaluation noise, `samples` rows of K values (row-major). */
  readonly evalNoise: Float32Array;
}

export function isVibModel(m: Model): m is VibModel {
  return typeof (m as Partial<VibModel>).encode === 'function' && typeof (m as Partial<VibModel>).decode === 'function';
}

/** softplus(s − 5): Alemi et al.'s offset keeps the initial σ small (≈ 0.0067). */
export function vibSigma(s: tf.Tensor2D): tf.Tensor2D {
  return tf.softplus(tf.sub(s, 5)) as tf.Tensor2D;
}

/** Per-example KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_k (μ² + σ² − 2 log σ − 1). */
export function vibKlRows(mu: tf.Tensor2D, sigma: tf.Tensor2D): tf.Tensor1D {
  return tf.mul(tf.sum(tf.sub(tf.sub(tf.add(tf.square(mu), tf.square(sigma)), tf.mul(tf.log(sigma), 2)), 1), 1), 0.5);
}

/** log mean_s softmax(logits_s) for logits [S, n, C] → [n, C] (log-sum-exp, stable). */
export function logMeanSoftmax(logits: tf.Tensor3D): tf.Tensor2D {
  const S = logits.shape[0];
  return tf.sub(tf.logSumExp(tf.logSoftmax(logits), 0), Math.log(S)) as tf.Tensor2D;
}

export function wrapVib(base: Model, settings: VibSettings, rng: Rng): VibModel {
  const { k, samples } = settings;
  if (!(Number.isInteger(k) && k > 0)) throw new UserError(`model.vib.k must be a positive integer, found ${k}`);
  if (!(Number.isInteger(samples) && samples > 0)) throw new UserError(`model.vib.samples must be a positive integer, found ${samples}`);
  const encoderTap = base.tapNames[base.tapNames.length - 1];
  // The input width of the encoder is only known from a forward; one example in eval mode is cheap.
  const d = tf.tidy(() => {
    const probe = tf.zeros([1, ...base.inputShape]) as tf.Tensor4D;
    return base.forward(probe, { training: false }).taps[encoderTap].size;
  });
  const pb = new ParamBuilder(rng, `${base.arch}+vib`);
  const encoder = new Linear(pb, 'vib.encoder', d, 2 * k);
  const decoder = new Linear(pb, 'vib.decoder', k, base.numClasses);
  const evalNoise = rng.fork('vib.eval-noise').fillNormal(new Float32Array(samples * k));
  // Only used when someone calls forward(training: true) directly (the `vib` objective draws
  // its noise from the step's own stream, so training stays a function of (seed, epoch, step)).
  const trainNoise = rng.fork('vib.train-noise');
  const params = [...base.params.filter((p) => p.trainable), ...pb.params(), ...base.params.filter((p) => !p.trainable)];

  const encode = (x: tf.Tensor4D, opts: ForwardOptions): VibEncoding => {
    const { taps } = base.forward(x, opts);
    const t = taps[encoderTap];
    const h = encoder.apply(tf.reshape(t, [t.shape[0], -1]) as tf.Tensor2D);
    const mu = tf.slice(h, [0, 0], [-1, k]) as tf.Tensor2D;
    const sigma = vibSigma(tf.slice(h, [0, k], [-1, k]) as tf.Tensor2D);
    return { mu, sigma, taps };
  };
  const decode = (z: tf.Tensor2D): tf.Tensor2D => decoder.apply(z);

  const forward = (x: tf.Tensor4D, opts: ForwardOptions): ForwardResult => {
    const { mu, sigma, taps } = encode(x, opts);
    const n = mu.shape[0];
    if (opts.training) {
      const eps = tf.tensor2d((opts.sample ?? trainNoise).fillNormal(new Float32Array(n * k)), [n, k]);
      return { logits: decode(tf.add(mu, tf.mul(sigma, eps))), taps };
    }
    // ForwardOptions.sample: the same S-sample average with fresh noise, per example.
    const eps = opts.sample
      ? tf.tensor3d(opts.sample.fillNormal(new Float32Array(samples * n * k)), [samples, n, k])
      : tf.reshape(tf.tensor2d(evalNoise, [samples, k]), [samples, 1, k]);
    const z = tf.add(tf.expandDims(mu, 0), tf.mul(tf.expandDims(sigma, 0), eps)); // [S, n, K]
    const logits = tf.reshape(decode(tf.reshape(z, [samples * n, k]) as tf.Tensor2D), [samples, n, base.numClasses]) as tf.Tensor3D;
    return { logits: logMeanSoftmax(logits), taps };
  };

  let disposed = false;
  return {
    arch: base.arch,
    numClasses: base.numClasses,
    inputShape: base.inputShape,
    tapNames: base.tapNames,
    maskTap: base.maskTap,
    params,
    vib: { ...settings },
    stochastic: true,
    encoderTap,
    encode,
    decode,
    evalNoise,
    forward,
    dispose(): void {
      if (disposed) return;
      disposed = true;
      base.dispose();
      for (const p of pb.params()) p.variable.dispose();
    },
  };
}
