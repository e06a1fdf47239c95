// Optional native kernels (N-API addon on oneDNN, native/) registered over the wasm
// backend's kernels for the heavy training ops: convolutions and their gradients, matrix
// products, the max-pooling gradient, the Sum/Mean reductions, bias adds, max/min, the SGD update, and batch norm (+ ReLU)
// forward and backward as custom kernels (./batchnorm). They
// run on all cores and compute in place in the wasm heap. Each keeps the kernel registered
// before it (tfjs-backend-wasm's or ibrar's patch) and falls back to it for what the addon
// does not cover.
//
// Environment: IBRAR_NATIVE=0 disables them; IBRAR_NATIVE_THREADS=n (or OMP_NUM_THREADS)
// sets the thread count; IBRAR_NATIVE_ADDON=path loads another build; IBRAR_NATIVE_CONV and
// IBRAR_NATIVE_MATMUL pick engines (see ./settings).
import { tf } from '../tf';
import { loadAddon, type NativeAddon } from './addon';
import { makeConvKernels } from './conv';
import { makeMatMulKernels } from './matmul';
import { makePoolKernels } from './pool';
import { makeReduceKernels } from './reduce';
import { makeAddKernel, makeMaxMinKernel } from './elementwise';
import { SGD_STEP, makeSgdKernel } from './sgd';
import { BATCH_NORM, BATCH_NORM_GRAD, makeBatchNormKernels, registerBatchNormGradient } from './batchnorm';

export { nativeKernelStats, resetNativeKernelStats, type KernelStats } from './stats';
export { ADDON_PATH } from './addon';
export { nativeBatchNorm, nativeBatchNormActive, type BatchNormAttrs } from './batchnorm';
export { nativeSgdActive, nativeSgdStep } from './sgd';
export { setNativeConvEngine, setNativeMatMulEngine, CONV_ENGINES, MATMUL_ENGINES, type ConvEngine, type MatMulEngine } from './settings';

export interface NativeKernelsResult {
  loaded: boolean;
  /** Kernel names now served by the addon on the wasm backend. */
  kernels: string[];
  /** Why the addon is not in use (when `loaded` is false). */
  reason?: string;
  /** Library versions and thread count (when loaded). */
  runtime?: string;
  /** Whether the addon was built with the optional OpenBLAS engines. */
  openblas?: boolean;
}

const BACKEND = 'wasm';

/** Kernels replaced, with what was registered before (undefined: nothing was). */
const originals = new Map<string, tf.KernelConfig | undefined>();
let result: NativeKernelsResult | null = null;

function fallback(kernelName: string): tf.KernelFunc {
  const original = originals.get(kernelName);
  if (!original) {
    return () => {
      throw new Error(`${kernelName}: the native kernel does not cover these arguments and the wasm backend has no kernel to fall back to`);
    };
  }
  return original.kernelFunc;
}

function lookup(kernelName: string): tf.KernelConfig | undefined {
  try {
    return tf.getKernel(kernelName, BACKEND);
  } catch {
    return undefined;
  }
}

function kernelTable(addon: NativeAddon): Array<[string, tf.KernelFunc]> {
  const conv = makeConvKernels(addon, fallback);
  const mm = makeMatMulKernels(addon, fallback);
  const pool = makePoolKernels(addon, fallback);
  const reduce = makeReduceKernels(addon, fallback);
  const bn = makeBatchNormKernels(addon);
  return [
    [tf.Conv2D, conv.conv2d],
    [tf.FusedConv2D, conv.fusedConv2d],
    [tf.Conv2DBackpropInput, conv.conv2dBackpropInput],
    [tf.Conv2DBackpropFilter, conv.conv2dBackpropFilter],
    [tf.BatchMatMul, mm.batchMatMul],
    [tf._FusedMatMul, mm.fusedMatMul],
    [tf.MaxPoolGrad, pool.maxPoolGrad],
    [tf.Sum, reduce.sum],
    [tf.Mean, reduce.mean],
    [tf.Add, makeAddKernel(addon, fallback)],
    [tf.Maximum, makeMaxMinKernel(addon, fallback, 'Maximum')],
    [tf.Minimum, makeMaxMinKernel(addon, fallback, 'Minimum')],
    [SGD_STEP, makeSgdKernel(addon)],
    [BATCH_NORM, bn.forward],
    [BATCH_NORM_GRAD, bn.backward],
  ];
}

/**
 * Loads the addon and registers its kernels for the 'wasm' backend, replacing (and keeping
 * for fallback) whatever is registered now: call it after registerWasmKernelPatches().
 * Never throws; idempotent.
 */
export function registerNativeKernels(): NativeKernelsResult {
  if (result?.loaded) return { ...result, kernels: [...result.kernels] };
  const load = loadAddon();
  if (load.addon === null) {
    result = { loaded: false, kernels: [], reason: load.reason };
    return { ...result };
  }
  let runtime: string;
  let openblas: boolean;
  try {
    const info = load.addon.info();
    runtime = `${info.runtime}; ${info.threads} threads`;
    openblas = info.openblas;
  } catch (err) {
    result = { loaded: false, kernels: [], reason: `addon unusable: ${(err as Error).message}` };
    return { ...result };
  }
  const kernels: string[] = [];
  for (const [kernelName, kernelFunc] of kernelTable(load.addon)) {
    const previous = lookup(kernelName);
    originals.set(kernelName, previous);
    if (previous) tf.unregisterKernel(kernelName, BACKEND);
    tf.registerKernel({ kernelName, backendName: BACKEND, kernelFunc });
    kernels.push(kernelName);
  }
  registerBatchNormGradient();
  result = { loaded: true, kernels, runtime, openblas };
  return { ...result, kernels: [...kernels] };
}

/** Puts back the kernels registerNativeKernels replaced (benchmarks and tests compare both). */
export function unregisterNativeKernels(): void {
  if (!result?.loaded) return;
  for (const [kernelName, previous] of originals) {
    tf.unregisterKernel(kernelName, BACKEND);
    if (previous) tf.registerKernel(previous);
  }
  originals.clear();
  result = null;
}

/** Sets the addon's thread count (oneDNN OpenMP and OpenBLAS); no-op without the addon. */
export function setNativeThreads(n: number): void {
  const load = loadAddon();
  if (load.addon) load.addon.setThreads(n);
}
