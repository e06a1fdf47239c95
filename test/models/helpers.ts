// Shared helpers for the model tests: the closed-form parameters and inputs that
// make_golden.py also uses, and PyTorch ↔ tfjs layout conversion.
import { tf } from '../../src/engine/tf';
import type { Model, ModelOptions, NamedParam } from '../../src/models/types';

export function options(partial: Partial<ModelOptions> & Pick<ModelOptions, 'numClasses' | 'inputShape'>): ModelOptions {
  return { width: 1, depth: 28, widen: 10, dropout: 0, normalize: null, ...partial };
}

/** PyTorch shape of a parameter stored in tfjs layout. */
export function torchShape(p: NamedParam): number[] {
  const s = p.variable.shape as number[];
  if (p.kind === 'conv') return [s[3], s[2], s[0], s[1]];
  if (p.kind === 'linear') return [s[1], s[0]];
  return [...s];
}

/** tfjs-layout tensor from a PyTorch-layout one. */
export function fromTorchLayout(p: NamedParam, t: tf.Tensor): tf.Tensor {
  if (p.kind === 'conv') return tf.transpose(t, [2, 3, 1, 0]);
  if (p.kind === 'linear') return tf.transpose(t, [1, 0]);
  return t;
}

/** PyTorch-layout tensor from a tfjs-layout one. */
export function toTorchLayout(p: NamedParam, t: tf.Tensor): tf.Tensor {
  if (p.kind === 'conv') return tf.transpose(t, [3, 2, 0, 1]);
  if (p.kind === 'linear') return tf.transpose(t, [1, 0]);
  return t;
}

function nameSeed(name: string): number {
  let s = 0;
  for (let j = 0; j < name.length; j++) s += (j + 1) * name.charCodeAt(j);
  return s % 1000;
}

/** make_golden.py `hash_uniform`: an exact 32-bit integer hash of (seed, i) → [0, 1). */
export function hashUniform(seed: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const offset = Math.imul(seed + 1, 0x85ebca77);
  for (let i = 0; i < n; i++) {
    let h = (Math.imul(i, 0x9e3779b1) + offset) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 0x2c1b3c6d) >>> 0;
    h = (h ^ (h >>> 12)) >>> 0;
    h = Math.imul(h, 0x297a2d39) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    out[i] = h / 4294967296;
  }
  return out;
}

/** make_golden.py `param_values`: flattened, PyTorch layout. */
export function formulaValues(name: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const u = hashUniform(nameSeed(name), n);
  const leaf = name.slice(name.lastIndexOf('.') + 1);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const b = 2 * u[i] - 1;
    if (leaf === 'weight' && shape.length >= 2) out[i] = b / Math.sqrt(n / shape[0]);
    else if (leaf === 'bias') out[i] = 0.1 * b;
    else if (leaf === 'weight') out[i] = 1 + 0.2 * b;
    else if (leaf === 'running_mean') out[i] = 0.1 * b;
    else if (leaf === 'running_var') out[i] = 1 + 0.5 * Math.abs(b);
    else throw new Error(`no formula for ${name}`);
  }
  return out;
}

export function setFormulaParams(model: Model): void {
  tf.tidy(() => {
    for (const p of model.params) {
      const shape = torchShape(p);
      p.variable.assign(fromTorchLayout(p, tf.tensor(formulaValues(p.name, shape), shape)));
    }
  });
}

/** make_golden.py `input_values`, returned NHWC. */
export function formulaInput(batch: number, h: number, w: number, c: number): tf.Tensor4D {
  const v = Float32Array.from(hashUniform(1001, batch * c * h * w));
  return tf.tidy(() => tf.transpose(tf.tensor4d(v, [batch, c, h, w]), [0, 2, 3, 1]));
}

/** make_golden.py `upstream`: d loss / d logits. */
export function formulaUpstream(n: number, k: number): tf.Tensor2D {
  return tf.tensor2d(Float32Array.from(hashUniform(1002, n * k), (u) => 2 * u - 1), [n, k]);
}

export interface TapSummary {
  shape: number[];
  sum: number;
  sumsq: number;
  probe: number[];
}

/** The same layout-free summary as make_golden.py (`shape` in PyTorch order). */
export function summarize(t: tf.Tensor): TapSummary {
  return tf.tidy(() => {
    const d = t.shape as number[];
    const shape = t.rank === 4 ? [d[0], d[3], d[1], d[2]] : [...d];
    const probe = t.rank === 4 ? tf.slice(t, [1, 0, 0, 0], [1, 1, 1, -1]) : tf.slice(t, [1, 0], [1, -1]);
    return {
      shape,
      sum: tf.sum(t).dataSync()[0],
      sumsq: tf.sum(tf.square(t)).dataSync()[0],
      probe: Array.from(probe.dataSync()),
    };
  });
}

/**
 * Passes when max |got − want| ≤ rel·scale + 1e-7, scale = rms(want) unless given: errors of a
 * float32 computation scale with the size of the values around, not with each element.
 */
export function assertClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, rel: number, scale?: number): void {
  if (got.length !== want.length) throw new Error(`${label}: length ${got.length} ≠ ${want.length}`);
  let sq = 0;
  for (let i = 0; i < want.length; i++) sq += want[i] * want[i];
  const s = scale ?? Math.sqrt(sq / Math.max(1, want.length));
  let worst = 0;
  let at = 0;
  for (let i = 0; i < got.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = Number.isNaN(d) ? Infinity : d;
      at = i;
    }
  }
  if (!(worst <= rel * s + 1e-7)) {
    throw new Error(`${label}: off by ${worst} at ${at} (got ${got[at]}, want ${want[at]}; allowed ${rel} × ${s})`);
  }
}

/** Tap summaries compared: probe by rms, Σx² relatively, Σx against √(N·Σx²) ≥ Σ|x|. */
export function assertSummaryClose(label: string, got: TapSummary, want: TapSummary, rel: number): void {
  if (JSON.stringify(got.shape) !== JSON.stringify(want.shape)) {
    throw new Error(`${label}: shape [${got.shape}] ≠ [${want.shape}]`);
  }
  const n = want.shape.reduce((a, b) => a * b, 1);
  assertClose(`${label} probe`, got.probe, want.probe, rel);
  assertClose(`${label} Σx²`, [got.sumsq], [want.sumsq], rel, Math.abs(want.sumsq));
  assertClose(`${label} Σx`, [got.sum], [want.sum], rel, Math.sqrt(n * want.sumsq));
}
