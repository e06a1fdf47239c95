// Test helpers for the attack suite: the golden tiny MLP as an AttackTarget, NCHW↔NHWC,
// and the invariants every attack must satisfy.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { initBackend } from '../../src/engine/backend';
import type { AttackTarget } from '../../src/attacks/types';
import type { Batch } from '../../src/data';
import { flat, readGolden, REPO_ROOT } from '../helpers/golden';

export interface GoldenLayer {
  W: number[][];
  b: number[];
}

/**
 * The reference MLP: flatten the NCHW image row-major, h = relu(h Wᵀ + b) for all but the
 * last layer. Our images are NHWC, so they are transposed to NCHW before flattening.
 */
export function mlpTarget(layers: GoldenLayer[], chw: [number, number, number]): AttackTarget & { dispose(): void } {
  const params = layers.map((l) => ({ wT: tf.transpose(tf.tensor2d(l.W)), b: tf.tensor1d(l.b) }));
  const numClasses = layers[layers.length - 1].b.length;
  return {
    numClasses,
    logits: (x) =>
      tf.tidy(() => {
        let h: tf.Tensor2D = tf.reshape(tf.transpose(x, [0, 3, 1, 2]), [x.shape[0], chw[0] * chw[1] * chw[2]]);
        params.forEach((p, i) => {
          h = tf.add(tf.matMul(h, p.wT), p.b);
          if (i < params.length - 1) h = tf.relu(h);
        });
        return h;
      }),
    dispose: () => params.forEach((p) => tf.dispose([p.wT, p.b])),
  };
}

/** Flat NCHW values (nested lists) → NHWC tensor. */
export function nchwToNhwc(values: number[], shape: [number, number, number, number]): tf.Tensor4D {
  return tf.tidy(() => tf.transpose(tf.tensor4d(values, shape), [0, 2, 3, 1]) as tf.Tensor4D);
}

/** NHWC tensor → flat NCHW values. */
export function nhwcToNchwFlat(x: tf.Tensor4D): Float32Array {
  return tf.tidy(() => tf.transpose(x, [0, 3, 1, 2]).dataSync() as Float32Array);
}

/** Largest per-element violation of the ε-ball (L∞) and of [0,1]. */
export function boxViolations(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number | null): { ball: number; box: number } {
  const a = xAdv.dataSync();
  const b = x.dataSync();
  let ball = 0;
  let box = 0;
  for (let i = 0; i < a.length; i++) {
    if (!Number.isFinite(a[i])) return { ball: Infinity, box: Infinity };
    if (eps !== null) ball = Math.max(ball, Math.abs(a[i] - b[i]) - eps);
    box = Math.max(box, -a[i], a[i] - 1);
  }
  return { ball, box };
}

export function accuracy(target: AttackTarget, x: tf.Tensor4D, labels: ArrayLike<number>): number {
  const pred = tf.tidy(() => tf.argMax(target.logits(x), 1).dataSync());
  let c = 0;
  for (let i = 0; i < labels.length; i++) if (pred[i] === labels[i]) c++;
  return c / labels.length;
}

/** Per-example ‖a − b‖ in the given norm (flattened over all pixels). */
export function lpDistances(a: tf.Tensor4D, b: tf.Tensor4D, norm: 'linf' | 'l2' | 'l1'): number[] {
  return Array.from(
    tf.tidy(() => {
      const d = tf.abs(tf.sub(a, b));
      if (norm === 'linf') return tf.max(d, [1, 2, 3]);
      if (norm === 'l1') return tf.sum(d, [1, 2, 3]);
      return tf.sqrt(tf.sum(tf.square(d), [1, 2, 3]));
    }).dataSync(),
  );
}

/** Largest per-example excess of ‖xAdv − x‖ over ε in `norm` (L∞, L2 or L1), and of [0,1]. */
export function lpViolations(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number, norm: 'Linf' | 'L2' | 'L1'): { ball: number; box: number } {
  const a = xAdv.dataSync();
  const b = x.dataSync();
  const d = a.length / xAdv.shape[0];
  let ball = 0;
  let box = 0;
  for (let i = 0; i < xAdv.shape[0]; i++) {
    let n = 0;
    for (let j = i * d; j < (i + 1) * d; j++) {
      if (!Number.isFinite(a[j])) return { ball: Infinity, box: Infinity };
      const e = Math.abs(a[j] - b[j]);
      n = norm === 'Linf' ? Math.max(n, e) : norm === 'L2' ? n + e * e : n + e;
      box = Math.max(box, -a[j], a[j] - 1);
    }
    ball = Math.max(ball, (norm === 'L2' ? Math.sqrt(n) : n) - eps);
  }
  return { ball, box };
}

/**
 * A randomized version of `base`: `logits` are the base's (the eval forward), `sampleLogits`
 * multiplies each logit by (1 + scale·ε), ε ~ N(0, 1) from the given generator.
 */
export function stochasticTarget(base: AttackTarget, scale = 0.3): AttackTarget {
  return {
    numClasses: base.numClasses,
    logits: (x) => base.logits(x),
    sampleLogits: (x, rng) =>
      tf.tidy(() => {
        const z = base.logits(x);
        const noise = tf.tensor2d(rng.fillNormal(new Float32Array(z.size)), z.shape as [number, number]);
        return tf.mul(z, tf.add(1, tf.mul(noise, scale))) as tf.Tensor2D;
      }),
  };
}

/** The outputs of a make-reference script, `test/attacks/fixtures/NAME` (x in NCHW, labels). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readReference(name: string): any {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'attacks', 'fixtures', name), 'utf8'));
}

/** What the reference tests attack: the golden MLP and a reference file's inputs, on wasm. */
export interface ReferenceSetup {
  target: ReturnType<typeof mlpTarget>;
  x: tf.Tensor4D;
  y: tf.Tensor1D;
}

export async function referenceSetup(ref: { x: unknown; labels: number[] }): Promise<ReferenceSetup> {
  await initBackend('wasm');
  const target = mlpTarget(readGolden('attacks.json').model.layers, [3, 4, 4]);
  return { target, x: nchwToNhwc(flat(ref.x), [ref.labels.length, 3, 4, 4]), y: tf.tensor1d(ref.labels, 'int32') };
}

/**
 * The reference inputs as one data batch (for the diagnostics), labelled with the model's own
 * predictions so that every example starts correctly classified.
 */
export async function ownLabelBatch(s: ReferenceSetup): Promise<Batch> {
  const pred = tf.tidy(() => tf.argMax(s.target.logits(s.x), 1));
  const y = Int32Array.from(await pred.data());
  pred.dispose();
  const n = y.length;
  const [, h, w, c] = s.x.shape;
  return { x: Float32Array.from(await s.x.data()), y, n, step: 0, indices: Int32Array.from({ length: n }, (_, i) => i), shape: [h, w, c] };
}

export function disposeReference(s: ReferenceSetup): void {
  s.target.dispose();
  tf.dispose([s.x, s.y]);
}

/** Largest |got − want| over two equally long arrays. */
export function maxGap(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let g = 0;
  for (let i = 0; i < got.length; i++) g = Math.max(g, Math.abs(got[i] - want[i]));
  return g;
}
