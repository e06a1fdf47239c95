// Creates a model's variables with PyTorch's default initialisation and keeps the list of
// named parameters (trainable first, then BatchNorm buffers, each in creation order).
//
// PyTorch initialises nn.Conv2d / nn.Linear with kaiming_uniform_(a=√5), i.e.
// U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²)) = √(1/3), so b = 1/√fan_in; the bias
// is U(−1/√fan_in, 1/√fan_in) too. fan_in = in_channels·kh·kw (conv) or in_features (linear).
// The IB-RAR models never call `_initialize_weights` (docs/method.md §0), so this is their init.
import { scaledChannels } from '../config/facts';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import type { NamedParam, ParamKind } from './types';

/** tfjs variable names are global to the engine, so every model gets its own prefix. */
let modelSerial = 0;

export class ParamBuilder {
  private readonly trainable: NamedParam[] = [];
  private readonly buffers: NamedParam[] = [];
  private readonly names = new Set<string>();
  private readonly scope: string;

  /**
   * Values depend only on the generator's state and the parameter's name (each parameter
   * draws from `rng.fork(name)`), so adding a layer never changes the others. `rng` itself
   * is not advanced.
   */
  constructor(
    private readonly rng: Rng,
    arch: string,
  ) {
    this.scope = `${arch}#${++modelSerial}`;
  }

  /** U(−bound, bound), drawn from this parameter's own stream. */
  uniform(name: string, shape: number[], bound: number, kind: ParamKind): tf.Variable {
    const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
    this.rng.fork(name).fillUniform(values, -bound, bound);
    return this.add(name, tf.tensor(values, shape), kind, true);
  }

  /** A parameter (trainable) or buffer (not trainable) filled with one value. */
  constant(name: string, shape: number[], value: number, trainable: boolean): tf.Variable {
    return this.add(name, tf.fill(shape, value), 'vector', trainable);
  }

  /** Trainable parameters first, then buffers. */
  params(): NamedParam[] {
    return [...this.trainable, ...this.buffers];
  }

  private add(name: string, init: tf.Tensor, kind: ParamKind, trainable: boolean): tf.Variable {
    if (this.names.has(name)) throw new Error(`duplicate parameter name '${name}'`);
    this.names.add(name);
    const variable = tf.variable(init, trainable, `${this.scope}/${name}`);
    init.dispose();
    (trainable ? this.trainable : this.buffers).push({ name, variable, kind, trainable });
    return variable;
  }
}

/** PyTorch's default bound for a layer with this fan-in: 1/√fan_in. */
export function defaultBound(fanIn: number): number {
  return 1 / Math.sqrt(fanIn);
}

/** Number of trainable scalars (what PyTorch's `sum(p.numel() for p in parameters())` gives). */
export function countTrainable(params: readonly NamedParam[]): number {
  return params.filter((p) => p.trainable).reduce((n, p) => n + p.variable.size, 0);
}

/** Channels after a width multiplier: round, at least 1. */
export function scaled(channels: number, width: number): number {
  return scaledChannels(channels, width);
}
