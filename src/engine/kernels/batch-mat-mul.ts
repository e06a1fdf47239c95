// BatchMatMul for the wasm backend with transposed operands. The stock kernel handles
// transposeA/transposeB by strided reads that run 15–50× slower than the plain product
// (measured: VGG16's fc2 weight gradient at batch 100 took ~10 s against 0.3 s), and tfjs's
// matMul gradient always asks for a transposed operand. Transposing explicitly with the
// backend's Transpose kernel, then multiplying untransposed, gives identical results.
import { tf } from '../tf';
import { release, runWasmKernel, type TensorInfo, type WasmBackend, type WasmKernelArgs } from './wasm-kernel-utils';

let stockKernel: tf.KernelFunc | null = null;

/** Remembers the backend's own kernel, which does the untransposed products. */
export function setStockBatchMatMul(kernelFunc: tf.KernelFunc): void {
  stockKernel = kernelFunc;
}

function swapLastTwo(backend: WasmBackend, x: TensorInfo): TensorInfo {
  const perm = x.shape.map((_, i) => i);
  const r = perm.length;
  [perm[r - 2], perm[r - 1]] = [perm[r - 1], perm[r - 2]];
  return runWasmKernel('Transpose', backend, { x }, { perm });
}

function batchMatMul(args: WasmKernelArgs): TensorInfo {
  if (!stockKernel) throw new Error("ibrar's wasm BatchMatMul was registered before the stock kernel was kept");
  const backend = args.backend as unknown as WasmBackend;
  const { a, b } = args.inputs as { a: TensorInfo; b: TensorInfo };
  const { transposeA, transposeB } = (args.attrs ?? {}) as { transposeA?: boolean; transposeB?: boolean };
  if (!transposeA && !transposeB) return stockKernel(args as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  const a2 = transposeA ? swapLastTwo(backend, a) : a;
  const b2 = transposeB ? swapLastTwo(backend, b) : b;
  const out = stockKernel({ inputs: { a: a2, b: b2 }, backend: args.backend, attrs: { ...args.attrs, transposeA: false, transposeB: false } } as Parameters<tf.KernelFunc>[0]) as TensorInfo;
  if (transposeA) release(backend, a2);
  if (transposeB) release(backend, b2);
  return out;
}

export const batchMatMulConfig: tf.KernelConfig = {
  kernelName: 'BatchMatMul',
  backendName: 'wasm',
  kernelFunc: batchMatMul as unknown as tf.KernelFunc,
};
