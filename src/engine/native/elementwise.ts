// Native element-wise kernels on hot paths where tfjs-wasm is slow:
//  - Add of a dense float32 tensor and a per-channel vector along its last axis (conv and
//    linear biases, in every forward pass and attack step): the broadcasting wasm Add measured
//    ~0.6 ms per call on VGG16's activations at batch 200; every other Add stays on wasm.
//  - Maximum / Minimum of two same-shape tensors (the L∞ projections of the attacks).
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { heap, intoOutput, isChannelBias, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { recordFallback } from './stats';

/** Below this many elements the wasm kernel is as fast as a call into the addon. */
const MIN_NATIVE_SIZE = 1 << 14;

export function makeAddKernel(addon: NativeAddon, fallback: (kernelName: string) => tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as WasmBackendLike;
    const { a, b } = args.inputs;
    for (const [x, bias] of [
      [a, b],
      [b, a],
    ]) {
      if (!isDenseFloat(x) || !isDenseFloat(bias) || x.shape.length < 2) continue;
      const channels = x.shape[x.shape.length - 1];
      const size = tf.util.sizeFromShape(x.shape);
      if (size < MIN_NATIVE_SIZE || bias.shape.length > x.shape.length || !isChannelBias(bias, channels)) continue;
      const out = intoOutput(tf.Add, backend, [...x.shape], (y) => {
        addon.addChannelBias(heap(backend), offsetOf(backend, x), offsetOf(backend, bias), offsetOf(backend, y), size / channels, channels);
      });
      if (out) return out;
    }
    recordFallback(tf.Add);
    return fallback(tf.Add)(args);
  };
}

/** Native Maximum / Minimum for two same-shape float32 tensors; the rest falls back. */
export function makeMaxMinKernel(addon: NativeAddon, fallback: (kernelName: string) => tf.KernelFunc, kernelName: 'Maximum' | 'Minimum'): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as WasmBackendLike;
    const { a, b } = args.inputs;
    if (isDenseFloat(a) && isDenseFloat(b) && tf.util.sizeFromShape(a.shape) >= MIN_NATIVE_SIZE && tf.util.arraysEqual(a.shape, b.shape)) {
      const size = tf.util.sizeFromShape(a.shape);
      const out = intoOutput(kernelName, backend, [...a.shape], (z) => {
        addon.maxMin(heap(backend), offsetOf(backend, a), offsetOf(backend, b), offsetOf(backend, z), size, kernelName === 'Maximum' ? 1 : 0);
      });
      if (out) return out;
    }
    recordFallback(kernelName);
    return fallback(kernelName)(args);
  };
}
