// MaxPoolGrad for the wasm backend. The stock kernel starts each window's running maximum at
// FLT_MIN (the smallest positive float, not the lowest) at flat offset 0, so a window whose
// values are all ≤ 0 routes its gradient to element 0 of the tensor, i.e. nowhere unless the
// window holds it (harmless only when a ReLU precedes the pool); tied maxima go to the
// last. This one recomputes each window's argmax and adds dy there:
//
//   dx[argmax_w x] += dy[w]   for every pooling window w
//
// Ties go to the first maximum in row-major window order (strict '>' from -∞), the rule of
// the cpu backend's maxPoolPositions; padding cells never win. A window whose values are
// all NaN or -∞ routes nothing, as on cpu. Plain JS over the wasm heap: channels are the
// innermost (contiguous) loop, so it is one pass over x and one over dy.
import { tf } from '../tf';
import type { TensorInfo, WasmBackend, WasmKernelArgs } from './wasm-kernel-utils';

type Shape4 = [number, number, number, number];

export function maxPoolGradWasm(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const attrs = args.attrs as unknown as tf.MaxPoolGradAttrs;
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`MaxPoolGrad: float32 tensors expected, got input ${input.dtype} and dy ${dy.dtype}`);
  }
  const info = tf.backend_util.computePool2DInfo(input.shape as Shape4, attrs.filterSize, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode);
  const { batchSize, inHeight: H, inWidth: W, inChannels: C, outHeight: oH, outWidth: oW } = info;
  const { filterHeight: fH, filterWidth: fW, strideHeight: sH, strideWidth: sW } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (dy.shape[0] !== batchSize || dy.shape[1] !== oH || dy.shape[2] !== oW || dy.shape[3] !== C) {
    throw new Error(`MaxPoolGrad: dy shape [${dy.shape}] does not match the pool output [${info.outShape}]`);
  }

  // Allocate first: growing the heap would invalidate views taken before.
  const dx = backend.makeOutput(input.shape, 'float32');
  const xv = backend.typedArrayFromHeap(input) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
  const dxv = backend.typedArrayFromHeap(dx) as Float32Array;
  dxv.fill(0);

  const best = new Float32Array(C);
  const bestAt = new Int32Array(C);
  for (let b = 0; b < batchSize; b++) {
    for (let oh = 0; oh < oH; oh++) {
      const rowCorner = oh * sH - top;
      const r0 = Math.max(rowCorner, 0);
      const r1 = Math.min(rowCorner + fH, H);
      for (let ow = 0; ow < oW; ow++) {
        const colCorner = ow * sW - left;
        const c0 = Math.max(colCorner, 0);
        const c1 = Math.min(colCorner + fW, W);
        best.fill(-Infinity);
        bestAt.fill(-1);
        for (let r = r0; r < r1; r++) {
          for (let c = c0; c < c1; c++) {
            const base = ((b * H + r) * W + c) * C;
            for (let ch = 0; ch < C; ch++) {
              const v = xv[base + ch];
              if (v > best[ch]) {
                best[ch] = v;
                bestAt[ch] = base + ch;
              }
            }
          }
        }
        const dyBase = ((b * oH + oh) * oW + ow) * C;
        for (let ch = 0; ch < C; ch++) {
          const at = bestAt[ch];
          if (at >= 0) dxv[at] += dyv[dyBase + ch];
        }
      }
    }
  }
  return dx;
}

export const maxPoolGradConfig: tf.KernelConfig = {
  kernelName: tf.MaxPoolGrad,
  backendName: 'wasm',
  kernelFunc: maxPoolGradWasm as unknown as tf.KernelFunc,
};
