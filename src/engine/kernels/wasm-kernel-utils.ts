// Shared plumbing for the kernels ibrar adds to the tfjs wasm backend: a structural view of
// the backend (so nothing here loads '@tensorflow/tfjs-backend-wasm' itself) and a way to
// run the backend's own registered kernels from inside another kernel.
//
// Ownership rule (as inside tfjs backends): every TensorInfo returned by a kernel function
// owns one reference on its dataId. Intermediates are released with `release`, exactly
// once each; the engine takes over the one TensorInfo a kernel returns.
import { tf } from '../tf';

export type TensorInfo = tf.TensorInfo;

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
export interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  /** Float32Array (or other typed array) view on the wasm heap; invalid after the heap grows. */
  typedArrayFromHeap(info: TensorInfo): tf.TypedArray;
  disposeData(dataId: tf.DataId, force?: boolean): boolean;
}

export type WasmKernelArgs = {
  inputs: tf.NamedTensorInfoMap;
  backend: {};
  attrs?: tf.NamedAttrMap;
};

/** Runs a kernel registered for the wasm backend, returning its single output. */
export function runWasmKernel(
  kernelName: string,
  backend: WasmBackend,
  inputs: Record<string, TensorInfo>,
  attrs: Record<string, unknown> = {},
): TensorInfo {
  const config = tf.getKernel(kernelName, 'wasm');
  if (!config) throw new Error(`wasm backend has no '${kernelName}' kernel`);
  const out = config.kernelFunc({
    inputs: inputs as tf.NamedTensorInfoMap,
    backend,
    attrs: attrs as tf.NamedAttrMap,
  });
  if (Array.isArray(out)) throw new Error(`wasm kernel '${kernelName}' returned ${out.length} outputs, expected 1`);
  return out;
}

/** Drops this code's reference on each intermediate. */
export function release(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId);
}

/** Explicit NHWC padding in the format Conv2D's `pad` attr takes. */
export function explicitPad(top: number, bottom: number, left: number, right: number): tf.backend_util.ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

export function assertNHWC(kernelName: string, dataFormat: string | undefined): void {
  if (dataFormat !== undefined && dataFormat !== 'NHWC') {
    throw new Error(`ibrar's wasm ${kernelName} supports dataFormat 'NHWC' only, got '${dataFormat}'`);
  }
}
