// Native Sum and Mean for float32 tensors reduced over a leading block of axes (batch norm's
// statistics and gradients over N, H, W of NHWC) or a trailing block. Small inputs and other
// axis patterns stay on the wasm kernels.
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { heap, intoOutput, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { recordFallback } from './stats';

/** Below this many elements the wasm kernel is as fast as a call into the addon. */
const MIN_NATIVE_SIZE = 4096;

export interface ReducePlan {
  rows: number;
  cols: number;
  /** true: reduce the rows (leading axes), leaving `cols` values; false: the reverse. */
  leading: boolean;
  count: number;
  outShape: number[];
}

/** How a reduction over `axis` maps onto a [rows, cols] sum, or null if it does not. */
export function planReduce(shape: number[], axis: number | number[], keepDims: boolean): ReducePlan | null {
  const axes = [...new Set(tf.util.parseAxisParam(axis, shape))].sort((a, b) => a - b);
  if (axes.length === 0) return null;
  const rank = shape.length;
  const isPrefix = axes.every((a, i) => a === i);
  const isSuffix = axes.every((a, i) => a === rank - axes.length + i);
  if (!isPrefix && !isSuffix) return null;
  const reduced = axes.reduce((p, a) => p * shape[a], 1);
  const kept = tf.util.sizeFromShape(shape) / reduced;
  const outShape = keepDims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
  return isPrefix
    ? { rows: reduced, cols: kept, leading: true, count: reduced, outShape }
    : { rows: kept, cols: reduced, leading: false, count: reduced, outShape };
}

export function makeReduceKernels(addon: NativeAddon, fallback: (kernelName: string) => tf.KernelFunc): { sum: tf.KernelFunc; mean: tf.KernelFunc } {
  function run(args: Parameters<tf.KernelFunc>[0], kernelName: string, mean: boolean): tf.TensorInfo | tf.TensorInfo[] {
    const backend = args.backend as WasmBackendLike;
    const { x } = args.inputs;
    const attrs = args.attrs ?? {};
    if (isDenseFloat(x) && tf.util.sizeFromShape(x.shape) >= MIN_NATIVE_SIZE) {
      const plan = planReduce(x.shape, attrs.axis as number | number[], Boolean(attrs.keepDims));
      if (plan) {
        const out = intoOutput(kernelName, backend, plan.outShape, (y) => {
          addon.reduceSum(heap(backend), offsetOf(backend, x), offsetOf(backend, y), plan.rows, plan.cols, plan.leading ? 1 : 0, mean ? 1 / plan.count : 1);
        });
        if (out) return out;
      }
    }
    recordFallback(kernelName);
    return fallback(kernelName)(args);
  }
  return {
    sum: (args) => run(args, tf.Sum, false),
    mean: (args) => run(args, tf.Mean, true),
  };
}
