// Batch → tensors. The caller owns (and disposes) the three tensors returned.
import { tf } from '../engine/tf';
import type { Batch } from './types';

export interface BatchTensors {
  /** [n, h, w, c] float32 in [0,1]. */
  x: tf.Tensor4D;
  /** [n] int32 class indices. */
  y: tf.Tensor1D;
  /** [n, numClasses] float32 one-hot labels. */
  yOneHot: tf.Tensor2D;
}

/** What toTensors reads from a batch. */
export type BatchLike = Pick<Batch, 'x' | 'y' | 'n' | 'shape'>;

/**
 * numClasses > 0 checks the labels and builds the one-hot matrix; numClasses = 0 means the
 * caller needs no one-hot labels (yOneHot is then an empty [n, 0] tensor).
 */
export function toTensors(batch: BatchLike, numClasses: number): BatchTensors {
  const [h, w, c] = batch.shape;
  if (batch.x.length !== batch.n * h * w * c || batch.y.length !== batch.n) {
    throw new Error(`batch of ${batch.n} has ${batch.x.length} pixel values and ${batch.y.length} labels for images ${h}x${w}x${c}`);
  }
  for (let i = 0; numClasses > 0 && i < batch.n; i++) {
    const v = batch.y[i];
    // tf.oneHot would silently give an all-zero row.
    if (v < 0 || v >= numClasses) throw new Error(`label ${v} at batch position ${i} is outside 0..${numClasses - 1}`);
  }
  const x = tf.tensor4d(batch.x, [batch.n, h, w, c], 'float32');
  const y = tf.tensor1d(batch.y, 'int32');
  if (numClasses <= 0) return { x, y, yOneHot: tf.zeros([batch.n, 0]) as tf.Tensor2D };
  const yOneHot = tf.tidy(() => tf.cast(tf.oneHot(y, numClasses), 'float32') as tf.Tensor2D);
  return { x, y, yOneHot };
}
