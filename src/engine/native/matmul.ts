// Native BatchMatMul and _FusedMatMul (bias + linear/relu) for the wasm backend. Batch
// broadcasting is covered when the batches flatten to one index each (equal batches, or one
// side a single matrix); other cases, other activations and PReLU weights fall back.
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { heap, intoOutput, isChannelBias, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { matMulEngineCode } from './settings';
import { recordFallback } from './stats';

type KernelArgs = Parameters<tf.KernelFunc>[0];


export interface MatMulPlan {
  /** Addon dims (native/src/kernels.h MatMulDims) minus relu: batchA, batchB, m, k, n, transA, transB. */
  batchA: number;
  batchB: number;
  m: number;
  k: number;
  n: number;
  outShape: number[];
}

/** Shapes the addon can multiply, or null (the caller falls back). */
export function planMatMul(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean): MatMulPlan | null {
  const ra = aShape.length;
  const rb = bShape.length;
  if (ra < 2 || rb < 2) return null;
  const m = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const k = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const n = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  if (k !== kb) return null;
  const outerA = aShape.slice(0, -2);
  const outerB = bShape.slice(0, -2);
  let outer: number[];
  try {
    outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  } catch {
    return null;
  }
  const batchA = tf.util.sizeFromShape(outerA);
  const batchB = tf.util.sizeFromShape(outerB);
  const batch = Math.max(batchA, batchB);
  const flattens = (batchA === 1 || batchB === 1 || batchA === batchB) && tf.util.sizeFromShape(outer) === batch;
  if (!flattens) return null;
  return { batchA, batchB, m, k, n, outShape: [...outer, m, n] };
}

export function makeMatMulKernels(
  addon: NativeAddon,
  fallback: (kernelName: string) => tf.KernelFunc,
): { batchMatMul: tf.KernelFunc; fusedMatMul: tf.KernelFunc } {
  function run(args: KernelArgs, kernelName: string, fused: boolean): tf.TensorInfo | tf.TensorInfo[] {
    const backend = args.backend as WasmBackendLike;
    const attrs = args.attrs ?? {};
    const { a, b, bias, preluActivationWeights } = args.inputs;
    const activation = fused ? ((attrs.activation as string | undefined) ?? 'linear') : 'linear';
    const transposeA = Boolean(attrs.transposeA);
    const transposeB = Boolean(attrs.transposeB);
    const supported =
      isDenseFloat(a) && isDenseFloat(b) && preluActivationWeights == null && (activation === 'linear' || activation === 'relu');
    const plan = supported ? planMatMul(a.shape, b.shape, transposeA, transposeB) : null;
    if (plan && (bias == null || isChannelBias(bias, plan.n))) {
      const dims = Int32Array.from([
        plan.batchA, plan.batchB, plan.m, plan.k, plan.n,
        transposeA ? 1 : 0, transposeB ? 1 : 0, activation === 'relu' ? 1 : 0,
      ]);
      const out = intoOutput(kernelName, backend, plan.outShape, (c) => {
        const biasOffset = bias == null ? -1 : offsetOf(backend, bias);
        addon.matmul(heap(backend), offsetOf(backend, a!), offsetOf(backend, b!), biasOffset, offsetOf(backend, c), dims, matMulEngineCode());
      });
      if (out) return out;
    }
    recordFallback(kernelName);
    return fallback(kernelName)(args);
  }
  return {
    batchMatMul: (args) => run(args, tf.BatchMatMul, false),
    fusedMatMul: (args) => run(args, tf._FusedMatMul, true),
  };
}
