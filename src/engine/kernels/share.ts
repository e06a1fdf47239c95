// Identity, and Cast to the same dtype, without a copy; and Cast to bool as x ≠ 0 (the stock
// kernel copies the numbers into bytes: cast([0, 2, −1], bool) gave [0, 2, 255]). The stock wasm kernels memcpy the whole
// tensor, and tfjs calls Identity for every tensor a gradient function saves (engine.clone in
// saveTensorsForBackwardMode): measured 123 full-size copies, ~10 % of a small-CNN training step.
// Sharing is safe because no wasm kernel (stock, patched or native) writes into its inputs;
// Reshape already shares the same way.
import type { tf } from '../tf';
import type { TensorInfo, WasmBackend, WasmKernelArgs } from './wasm-kernel-utils';

interface RefCountingBackend {
  incRef(dataId: tf.DataId): void;
}

function share(x: TensorInfo, backend: RefCountingBackend): TensorInfo {
  backend.incRef(x.dataId);
  return { dataId: x.dataId, shape: [...x.shape], dtype: x.dtype };
}

let stockCast: tf.KernelFunc | null = null;

/** The stock Cast, called for real dtype conversions. */
export function setStockCast(kernel: tf.KernelFunc): void {
  stockCast = kernel;
}

function identity(args: WasmKernelArgs): TensorInfo {
  const { x } = args.inputs as { x: TensorInfo };
  if (x.dtype === 'string') throw new Error('Identity of a string tensor is not supported on wasm');
  return share(x, args.backend as unknown as RefCountingBackend);
}

function cast(args: WasmKernelArgs): TensorInfo | TensorInfo[] {
  const { x } = args.inputs as { x: TensorInfo };
  const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
  if (dtype === x.dtype) return share(x, args.backend as unknown as RefCountingBackend);
  if (dtype === 'bool') {
    const backend = args.backend as unknown as WasmBackend;
    const out = backend.makeOutput([...x.shape], 'bool');
    const src = backend.typedArrayFromHeap(x);
    const dst = backend.typedArrayFromHeap(out);
    for (let i = 0; i < src.length; i++) dst[i] = src[i] !== 0 ? 1 : 0;
    return out;
  }
  if (!stockCast) throw new Error('stock wasm Cast kernel not recorded');
  return stockCast(args as unknown as Parameters<tf.KernelFunc>[0]);
}

export const identityConfig: tf.KernelConfig = {
  kernelName: 'Identity',
  backendName: 'wasm',
  kernelFunc: identity as unknown as tf.KernelFunc,
};

export const castConfig: tf.KernelConfig = {
  kernelName: 'Cast',
  backendName: 'wasm',
  kernelFunc: cast as unknown as tf.KernelFunc,
};
