// Conv2DBackpropInput (the conv input gradient) for the wasm backend. The stock kernel is a
// plain loop about an order of magnitude slower than the XNNPACK forward conv. The input
// gradient is itself a forward convolution ("full" correlation with the flipped filter):
//
//   dx[n,h,w,ci] = Σ_{kh,kw,co} dyᵘ_pad[n, h+kh, w+kw, co] · W[KH-1-kh, KW-1-kw, ci, co]
//
// where dyᵘ is dy with s-1 zeros between neighbouring rows/columns (stride s; dyᵘ = dy for
// s = 1), padded by KH-1-top rows before and H+top-(OH-1)·sH-1 after (columns alike; top,
// left = forward padding). So dx = conv2d(dyᵘ, W'), W' = W rotated 180° in space with in/out
// channels swapped. For s > 1 this spends s² times the forward FLOPs, many on zeros, but is
// still faster than the stock loop (measured ≈2.5× at s = 2). Paddings that would have to
// be negative (forward padding ≥ kernel size, or rows the forward conv never read) go to
// the stock kernel, kept from before it was replaced.
import { tf } from '../tf';
import { assertNHWC, explicitPad, release, runWasmKernel, type TensorInfo, type WasmBackend, type WasmKernelArgs } from './wasm-kernel-utils';

type Shape4 = [number, number, number, number];

let stockKernel: tf.KernelFunc | null = null;

/** Remembers the backend's own kernel so unsupported paddings can fall back to it. */
export function setStockConv2DBackpropInput(kernelFunc: tf.KernelFunc): void {
  stockKernel = kernelFunc;
}

/** dy with s-1 zeros between neighbouring rows (columns), and `zeros` more around each one. */
function spreadDy(backend: WasmBackend, dy: TensorInfo, sH: number, sW: number, zeros: [number, number, number, number]): TensorInfo {
  const [n, oH, oW, c] = dy.shape;
  const split = runWasmKernel('Reshape', backend, { x: dy }, { shape: [n, oH, 1, oW, 1, c] });
  const padded = runWasmKernel(
    'PadV2',
    backend,
    { x: split },
    {
      paddings: [
        [0, 0],
        [0, 0],
        [zeros[0], zeros[1]],
        [0, 0],
        [zeros[2], zeros[3]],
        [0, 0],
      ],
      constantValue: 0,
    },
  );
  const merged = runWasmKernel('Reshape', backend, { x: padded }, { shape: [n, oH * sH, oW * sW, c] });
  release(backend, split, padded);
  return merged;
}

/** [padBefore, padAfter, zerosBefore, zerosAfter] along one axis, or null if impossible. */
function axisPlan(k: number, s: number, inSize: number, outSize: number, forwardPadBefore: number): number[] | null {
  // Full correlation of the exact spread dy ((outSize-1)·s+1 rows) needs these paddings.
  const before = k - 1 - forwardPadBefore;
  const after = inSize + forwardPadBefore - (outSize - 1) * s - 1;
  // The reshape trick adds s-1 zeros per row; put them before each row as far as `before`
  // allows and after it otherwise, then pad only what is still missing.
  const zerosBefore = Math.min(Math.max(before, 0), s - 1);
  const zerosAfter = s - 1 - zerosBefore;
  const padBefore = before - zerosBefore;
  const padAfter = after - zerosAfter;
  return padBefore < 0 || padAfter < 0 ? null : [padBefore, padAfter, zerosBefore, zerosAfter];
}

export interface BackpropInputPlan {
  /** Conv2D padding [top, bottom, left, right] of the spread dy. */
  pads: [number, number, number, number];
  /** Zeros put [before, after] each dy row, then [before, after] each column (sum s-1). */
  zeros: [number, number, number, number];
}

/**
 * How to compute dx as a stride-1 conv of the zero-spread dy with the rotated filter; null
 * when a padding would have to be negative (forward padding ≥ kernel size, or input rows
 * the forward conv never read): the stock kernel handles those.
 */
export function planBackpropInput(info: tf.backend_util.Conv2DInfo): BackpropInputPlan | null {
  const rows = axisPlan(info.filterHeight, info.strideHeight, info.inHeight, info.outHeight, info.padInfo.top);
  const cols = axisPlan(info.filterWidth, info.strideWidth, info.inWidth, info.outWidth, info.padInfo.left);
  if (rows === null || cols === null) return null;
  return { pads: [rows[0], rows[1], cols[0], cols[1]], zeros: [rows[2], rows[3], cols[2], cols[3]] };
}

export function conv2DBackpropInputWasm(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { dy, filter } = args.inputs as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  assertNHWC('Conv2DBackpropInput', attrs.dataFormat);

  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape,
    filter.shape as Shape4,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  if (dy.shape[1] !== info.outHeight || dy.shape[2] !== info.outWidth || dy.shape[3] !== info.outChannels) {
    throw new Error(`Conv2DBackpropInput: dy shape [${dy.shape}] does not match the forward output [${info.outShape}]`);
  }
  const plan = planBackpropInput(info);
  if (plan === null) {
    if (!stockKernel) throw new Error('Conv2DBackpropInput: the stock wasm kernel was not recorded');
    return stockKernel(args) as TensorInfo;
  }
  const [padTop, padBottom, padLeft, padRight] = plan.pads;
  const { strideHeight: sH, strideWidth: sW } = info;

  const flipped = runWasmKernel('Reverse', backend, { x: filter }, { dims: [0, 1] });
  const rotated = runWasmKernel('Transpose', backend, { x: flipped }, { perm: [0, 1, 3, 2] });
  const spread = sH === 1 && sW === 1 ? dy : spreadDy(backend, dy, sH, sW, plan.zeros);
  const dx = runWasmKernel(
    'Conv2D',
    backend,
    { x: spread, filter: rotated },
    {
      strides: [1, 1],
      dilations: [1, 1],
      pad: explicitPad(padTop, padBottom, padLeft, padRight),
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
    },
  );
  release(backend, flipped, rotated);
  if (spread !== dy) release(backend, spread);
  return dx;
}

export const conv2DBackpropInputConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropInput,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropInputWasm as unknown as tf.KernelFunc,
};
