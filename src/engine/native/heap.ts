// The parts of tfjs-backend-wasm's BackendWasm the native kernels use. Tensor data lives in
// the WebAssembly memory; `dataIdMap` gives each tensor's byte offset there. The memory can
// grow (detaching old views) whenever the backend allocates, so `heap()` must be read after
// the last makeOutput of a kernel.
import { tf } from '../tf';
import { recordError, recordNative } from './stats';

export interface WasmBackendLike {
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: object, force?: boolean): boolean;
  wasm: { HEAPU8: Uint8Array };
}

export function offsetOf(backend: WasmBackendLike, t: tf.TensorInfo): number {
  const data = backend.dataIdMap.get(t.dataId);
  if (!data) throw new Error('native kernel: tensor is not on the wasm backend');
  return data.memoryOffset;
}

export function heap(backend: WasmBackendLike): Uint8Array {
  return backend.wasm.HEAPU8;
}

/** True when the tensor can be handed to the addon as dense float32 data. */
export function isDenseFloat(t: tf.TensorInfo | undefined): t is tf.TensorInfo {
  return t != null && t.dtype === 'float32' && t.shape.every((d) => d > 0);
}

/**
 * A bias the addon can add along the last axis: `n` floats, shaped [n] or [1, ..., 1, n]
 * (the same memory as rank 1).
 */
export function isChannelBias(bias: tf.TensorInfo, n: number): boolean {
  const s = bias.shape;
  return bias.dtype === 'float32' && s.length >= 1 && s[s.length - 1] === n && s.slice(0, -1).every((d) => d === 1);
}

/**
 * Runs `compute` into a fresh float32 output. On addon failure (e.g. oneDNN rejects a
 * geometry) frees the output, records the error and returns null so the caller falls back.
 */
export function intoOutput(
  kernelName: string,
  backend: WasmBackendLike,
  shape: number[],
  compute: (out: tf.TensorInfo) => void,
): tf.TensorInfo | null {
  const out = backend.makeOutput(shape, 'float32');
  try {
    compute(out);
    recordNative(kernelName);
    return out;
  } catch (err) {
    backend.disposeData(out.dataId, true);
    recordError(kernelName, err);
    return null;
  }
}

/** Whether the active backend is wasm and serves `kernelName` (one of the addon's custom kernels). */
export function activeWasmServes(kernelName: string): boolean {
  const backend = tf.getBackend();
  return backend === 'wasm' && tf.getKernel(kernelName, backend) !== undefined;
}
