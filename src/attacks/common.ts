// Small tensor helpers every attack uses: losses, input gradients, projections, row
// bookkeeping. Label picking is one-hot × logits (tf.gather has no gradient on wasm). Values
// come to the host with `await data()`, which every backend supports (webgpu has no dataSync).
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import type { AttackTarget } from './types';

export function oneHot(y: tf.Tensor1D, numClasses: number): tf.Tensor2D {
  return tf.tidy(() => tf.cast(tf.oneHot(tf.cast(y, 'int32'), numClasses), 'float32') as tf.Tensor2D);
}

/** Per-example cross-entropy −log softmax(z)_y. */
export function cePerExample(logits: tf.Tensor2D, yOneHot: tf.Tensor2D): tf.Tensor1D {
  return tf.neg(tf.sum(tf.mul(yOneHot, tf.logSoftmax(logits)), 1)) as tf.Tensor1D;
}

/** Batch-mean CE, the loss whose gradient the torchattacks attacks follow (docs/method.md §5). */
export function ceMean(logits: tf.Tensor2D, yOneHot: tf.Tensor2D): tf.Scalar {
  return tf.mean(cePerExample(logits, yOneHot)) as tf.Scalar;
}

/** ∇ₓ loss(x); `loss` may call the target's forward. */
export function inputGrad(loss: (x: tf.Tensor4D) => tf.Scalar, x: tf.Tensor4D): tf.Tensor4D {
  return tf.grad((xi: tf.Tensor) => loss(xi as tf.Tensor4D))(x) as tf.Tensor4D;
}

/** torchattacks' projection: δ = clip(x' − x, −ε, ε), then clip(x + δ, 0, 1). */
export function projectLinf(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => tf.clipByValue(tf.add(x, tf.clipByValue(tf.sub(xAdv, x), -eps, eps)), 0, 1) as tf.Tensor4D);
}

/** AutoAttack's projection: clip(min(max(x', x − ε), x + ε), 0, 1). */
export function projectLinfMinMax(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(
    () => tf.clipByValue(tf.minimum(tf.maximum(xAdv, tf.sub(x, eps)), tf.add(x, eps)), 0, 1) as tf.Tensor4D,
  );
}

/** L2 projection onto the ε-ball around x (torchattacks PGDL2: δ·min(ε/‖δ‖, 1)), then [0,1]. */
export function projectL2(xAdv: tf.Tensor4D, x: tf.Tensor4D, eps: number): tf.Tensor4D {
  return tf.tidy(() => {
    const delta = tf.sub(xAdv, x);
    const norms = tf.sqrt(tf.sum(tf.square(delta), [1, 2, 3], true));
    // ε/0 = ∞ → factor 1, as in the reference (δ = 0 stays 0).
    const factor = tf.minimum(tf.div(eps, norms), 1);
    return tf.clipByValue(tf.add(x, tf.mul(delta, factor)), 0, 1) as tf.Tensor4D;
  });
}

/** `await t.data()` of a tensor made by `f` (inside tidy), which is then disposed. */
export async function readTidy<D extends tf.DataType = 'float32'>(f: () => tf.Tensor): Promise<tf.DataTypeMap[D]> {
  const t = tf.tidy(f);
  try {
    return (await t.data()) as tf.DataTypeMap[D];
  } finally {
    t.dispose();
  }
}

export async function predict(target: AttackTarget, x: tf.Tensor4D): Promise<Int32Array> {
  return readTidy<'int32'>(() => tf.argMax(target.logits(x), 1));
}

export async function labelsOf(y: tf.Tensor1D): Promise<Int32Array> {
  return Int32Array.from(await y.data(), (v) => Math.round(v));
}

/** U(lo, hi) noise drawn from the attack's Rng (deterministic on every backend). */
export function uniformTensor(rng: Rng, shape: number[], lo: number, hi: number): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillUniform(new Float32Array(size), lo, hi), shape, 'float32');
}

export function normalTensor(rng: Rng, shape: number[]): tf.Tensor {
  const size = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(rng.fillNormal(new Float32Array(size)), shape, 'float32');
}

export function gatherRows<T extends tf.Tensor>(x: T, idx: ArrayLike<number>): T {
  return tf.tidy(() => tf.gather(x, tf.tensor1d(Array.from(idx), 'int32')) as T);
}

/** base with rows idx[j] replaced by rows[j]. */
export function mergeRows<T extends tf.Tensor>(base: T, rows: T, idx: ArrayLike<number>): T {
  if (idx.length === 0) return tf.clone(base);
  const n = base.shape[0];
  const src = new Int32Array(n);
  for (let i = 0; i < n; i++) src[i] = i;
  for (let j = 0; j < idx.length; j++) src[idx[j]] = n + j;
  return tf.tidy(() => tf.gather(tf.concat([base, rows], 0), tf.tensor1d(src, 'int32')) as T);
}

/** A [n,1,1,1] boolean tensor from a per-example flag list (for tf.where on images). */
export function rowMask(flags: ArrayLike<boolean | number>, rank = 4): tf.Tensor {
  const shape = [flags.length, ...new Array(rank - 1).fill(1)];
  return tf.tensor(Uint8Array.from(flags as ArrayLike<number>, (v) => (v ? 1 : 0)), shape, 'bool');
}

/** Replace the rows of `cur` flagged in `flags` by those of `next` (disposes nothing). */
export function whereRows<T extends tf.Tensor>(flags: ArrayLike<boolean | number>, next: T, cur: T): T {
  return tf.tidy(() => tf.where(rowMask(flags, cur.rank), next, cur) as T);
}

/** Per-example ‖a − b‖∞. */
export async function linfDist(a: tf.Tensor4D, b: tf.Tensor4D): Promise<Float32Array> {
  return readTidy(() => tf.max(tf.abs(tf.sub(a, b)), [1, 2, 3]));
}

/** Indices i with flags[i] true. */
export function indicesWhere(flags: ArrayLike<boolean | number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < flags.length; i++) if (flags[i]) out.push(i);
  return out;
}

/** Replace `holder` by `next`, disposing the old tensor (loop-carried state). */
export function swap<T extends tf.Tensor>(old: T, next: T): T {
  if (old !== next) old.dispose();
  return next;
}

/** Per example, the class with the `rank`-th largest logit (rank 2 = runner-up). */
export async function rankedClass(target: AttackTarget, x: tf.Tensor4D, rank: number): Promise<Int32Array> {
  const all = await readTidy<'int32'>(() => tf.topk(target.logits(x), rank).indices);
  return Int32Array.from({ length: x.shape[0] }, (_, i) => all[i * rank + rank - 1]);
}
