// SGD with momentum and coupled L2 weight decay, with PyTorch's update rule
// (torch.optim.SGD, dampening 0, no Nesterov):
//   g ← ∇ + wd·θ;  b ← g on the first step, else μ·b + g;  θ ← θ − lr·b
// The momentum buffers are named variables so checkpoints can save and restore them.
import { tf } from '../engine/tf';
import type { NamedParam } from '../models/types';
import { nativeSgdActive, nativeSgdStep } from '../engine/native';

export interface SgdOptions {
  lr: number;
  momentum: number;
  weightDecay: number;
}

export class Sgd {
  private buffers = new Map<string, tf.Variable>();
  /** Whether each buffer has been written at least once (PyTorch initialises b to g). */
  private started = false;
  lr: number;

  constructor(
    private readonly params: readonly NamedParam[],
    private readonly opts: SgdOptions,
  ) {
    this.lr = opts.lr;
    if (opts.momentum > 0) {
      for (const p of params) {
        if (!p.trainable) continue;
        const zeros = tf.zerosLike(p.variable);
        this.buffers.set(p.name, tf.variable(zeros, false, `${p.name}.momentum_buffer`));
        zeros.dispose();
      }
    }
  }

  /** Apply one step. `grads` maps variable names (tf.Variable.name) to gradients; disposes nothing it was given. */
  step(grads: tf.NamedTensorMap): void {
    const { momentum, weightDecay } = this.opts;
    const lr = this.lr;
    const native = nativeSgdActive();
    tf.tidy(() => {
      for (const p of this.params) {
        if (!p.trainable) continue;
        const grad = grads[p.variable.name];
        if (!grad) continue;
        const buf = momentum > 0 ? this.buffers.get(p.name)! : null;
        if (native && grad.dtype === 'float32') {
          // One kernel, the same float32 operations as below (bit-identical).
          const [param, next] = nativeSgdStep(p.variable, grad, buf, { lr, momentum, weightDecay, started: this.started });
          if (buf) buf.assign(next);
          p.variable.assign(param);
          continue;
        }
        let g = weightDecay > 0 ? tf.add(grad, tf.mul(p.variable, weightDecay)) : grad;
        if (buf) {
          const next = this.started ? tf.add(tf.mul(buf, momentum), g) : g;
          buf.assign(next);
          g = next;
        }
        p.variable.assign(tf.sub(p.variable, tf.mul(g, lr)));
      }
    });
    this.started = true;
  }

  /** Slots for checkpointing (`<param>.momentum_buffer`, tfjs layout), read with `await data()`. */
  async exportState(): Promise<Array<{ name: string; data: Float32Array; shape: number[] }>> {
    return Promise.all(
      [...this.buffers.entries()].map(async ([name, v]) => ({ name: `${name}.momentum_buffer`, data: (await v.data()) as Float32Array, shape: v.shape })),
    );
  }

  /** Restore slots written by exportState; every buffer must be present with its shape. */
  importState(slots: ReadonlyArray<{ name: string; data: Float32Array; shape: number[] }>, started: boolean): void {
    const byName = new Map(slots.map((s) => [s.name, s]));
    for (const [name, v] of this.buffers) {
      const slot = byName.get(`${name}.momentum_buffer`);
      if (!slot) throw new Error(`optimizer state lacks ${name}.momentum_buffer`);
      if (slot.shape.join(',') !== v.shape.join(',')) throw new Error(`optimizer slot ${slot.name}: shape [${slot.shape}] vs [${v.shape}]`);
      tf.tidy(() => v.assign(tf.tensor(slot.data, v.shape)));
    }
    this.started = started;
  }

  get hasStarted(): boolean {
    return this.started;
  }

  dispose(): void {
    for (const v of this.buffers.values()) v.dispose();
    this.buffers.clear();
  }
}

/** StepLR: lr = base · γ^⌊epoch / stepSize⌋ (epoch counted from 0), or constant. */
export function learningRateAt(epoch: number, base: number, schedule: { type: 'step' | 'none'; stepSize: number; gamma: number }): number {
  if (schedule.type === 'none') return base;
  return base * Math.pow(schedule.gamma, Math.floor(epoch / schedule.stepSize));
}
