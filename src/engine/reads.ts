// Reading tensors back to the host. tfjs's GPU backends cannot read synchronously in Node
// (webgpu reads back through an OffscreenCanvas), so code that must run on them awaits
// `data()`; the few places that need a value in the middle of a synchronous computation ask
// `backendReadsSync()` first and take a slower asynchronous route where it is false.
import { tf } from './tf';

/** Backends whose `dataSync()` of a device-resident tensor does not work in Node. */
const ASYNC_ONLY = new Set(['webgpu', 'webgl']);

/** Whether the active backend can read any tensor synchronously. */
export function backendReadsSync(): boolean {
  return !ASYNC_ONLY.has(tf.getBackend());
}

/**
 * The first element of each scalar (or any) tensor, read with one device round trip: the
 * tensors are cast to float32 and concatenated first. Exact for float32 values and for
 * integers below 2^24 (counts). Disposes nothing it was given.
 */
export async function readFirstValues(tensors: readonly tf.Tensor[]): Promise<number[]> {
  if (tensors.length === 0) return [];
  const packed = tf.tidy(() => tf.concat(tensors.map((t) => tf.reshape(tf.cast(t, 'float32'), [-1]).slice(0, 1))));
  try {
    return Array.from(await packed.data());
  } finally {
    packed.dispose();
  }
}
