// Native MaxPoolGrad for the wasm backend (NHWC float32); MaxPool itself stays on wasm.
// Geometry from tfjs's computePool2DInfo, so 'same'/'valid'/numeric pads and dimRoundingMode
// match tfjs.
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { heap, intoOutput, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { recordFallback } from './stats';

type PoolInfo = ReturnType<typeof tf.backend_util.computePool2DInfo>;

/** Dims in the addon's order (native/src/kernels.h PoolDims): n, ih, iw, c, oh, ow, kh, kw, sh, sw, pt, pl. */
export function poolDims(info: PoolInfo): Int32Array {
  return Int32Array.from([
    info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
  ]);
}

function poolInfo(xShape: number[], attrs: tf.NamedAttrMap): PoolInfo {
  return tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize as number | [number, number],
    attrs.strides as number | [number, number],
    1,
    attrs.pad as 'same' | 'valid' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
  );
}

export function makePoolKernels(addon: NativeAddon, fallback: (kernelName: string) => tf.KernelFunc): { maxPoolGrad: tf.KernelFunc } {
  return {
    maxPoolGrad(args) {
      const backend = args.backend as WasmBackendLike;
      const { dy, input } = args.inputs;
      if (isDenseFloat(dy) && isDenseFloat(input) && input.shape.length === 4) {
        const info = poolInfo(input.shape, args.attrs ?? {});
        if (info.outShape.every((d, i) => d === dy.shape[i])) {
          const dims = poolDims(info);
          const out = intoOutput(tf.MaxPoolGrad, backend, input.shape, (dx) => {
            addon.maxPoolGrad(heap(backend), offsetOf(backend, input), offsetOf(backend, dy), offsetOf(backend, dx), dims);
          });
          if (out) return out;
        }
      }
      recordFallback(tf.MaxPoolGrad);
      return fallback(tf.MaxPoolGrad)(args);
    },
  };
}
