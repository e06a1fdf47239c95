// Native Conv2D, FusedConv2D, Conv2DBackpropInput and Conv2DBackpropFilter for the wasm
// backend. Geometry comes from tfjs's own computeConv2DInfo, so 'same'/'valid'/explicit
// padding and dimRoundingMode mean exactly what they mean in tfjs; the addon receives the
// resolved pads. Anything the addon does not cover (NCHW, non-float32, other activations,
// PReLU weights, empty tensors) goes to the kernel that was registered before.
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { heap, intoOutput, isChannelBias, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { convEngineCode } from './settings';
import { recordFallback } from './stats';

type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;
type KernelArgs = Parameters<tf.KernelFunc>[0];
type Shape4 = [number, number, number, number];

/**
 * Dims in the addon's order (native/src/kernels.h ConvDims):
 * n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr.
 */
export function convDims(info: Conv2DInfo): Int32Array {
  const pb = farPad(info.inHeight, info.effectiveFilterHeight, info.strideHeight, info.outHeight, info.padInfo.top, info.padInfo.bottom);
  const pr = farPad(info.inWidth, info.effectiveFilterWidth, info.strideWidth, info.outWidth, info.padInfo.left, info.padInfo.right);
  return Int32Array.from([
    info.batchSize, info.inHeight, info.inWidth, info.inChannels,
    info.outHeight, info.outWidth, info.outChannels,
    info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth,
    info.dilationHeight, info.dilationWidth,
    info.padInfo.top, info.padInfo.left, pb, pr,
  ]);
}

/**
 * oneDNN derives the output size as floor((in - kEff + near + far) / stride) + 1 and insists
 * it equals the given one. tfjs may round differently (dimRoundingMode 'ceil'/'round' with
 * numeric pads); then the far pad is set to what exactly covers the tfjs output. The extra
 * taps read zeros, which is what tfjs's reference kernels do past the input edge.
 */
function farPad(inSize: number, kEff: number, stride: number, outSize: number, near: number, far: number): number {
  if (Math.floor((inSize - kEff + near + far) / stride) + 1 === outSize) return far;
  return (outSize - 1) * stride + kEff - inSize - near;
}

function channelsLastInfo(
  xShape: number[],
  filterShape: number[],
  attrs: tf.NamedAttrMap,
  dilations: number | [number, number],
): Conv2DInfo | null {
  if ((attrs.dataFormat ?? 'NHWC') !== 'NHWC') return null;
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides as number | [number, number],
    dilations,
    attrs.pad as 'same' | 'valid' | number,
    attrs.dimRoundingMode as 'floor' | 'round' | 'ceil' | undefined,
    false,
    'channelsLast',
  );
}

export interface ConvKernelFuncs {
  conv2d: tf.KernelFunc;
  fusedConv2d: tf.KernelFunc;
  conv2dBackpropInput: tf.KernelFunc;
  conv2dBackpropFilter: tf.KernelFunc;
}

/** `fallback(kernelName)` returns the previously registered kernel func (or throws). */
export function makeConvKernels(addon: NativeAddon, fallback: (kernelName: string) => tf.KernelFunc): ConvKernelFuncs {
  function forward(args: KernelArgs, kernelName: string, withEpilogue: boolean): tf.TensorInfo | tf.TensorInfo[] {
    const backend = args.backend as WasmBackendLike;
    const attrs = args.attrs ?? {};
    const { x, filter, bias, preluActivationWeights } = args.inputs;
    const activation = withEpilogue ? ((attrs.activation as string | undefined) ?? 'linear') : 'linear';
    let info: Conv2DInfo | null = null;
    if (isDenseFloat(x) && isDenseFloat(filter) && preluActivationWeights == null && (activation === 'linear' || activation === 'relu')) {
      info = channelsLastInfo(x.shape, filter.shape, attrs, (attrs.dilations as number | [number, number]) ?? 1);
    }
    if (info && (bias == null || isChannelBias(bias, info.outChannels))) {
      const dims = convDims(info);
      const out = intoOutput(kernelName, backend, info.outShape, (y) => {
        const biasOffset = bias == null ? -1 : offsetOf(backend, bias);
        addon.conv2d(heap(backend), offsetOf(backend, x!), offsetOf(backend, filter!), biasOffset, offsetOf(backend, y), dims, activation === 'relu' ? 1 : 0, convEngineCode());
      });
      if (out) return out;
    }
    recordFallback(kernelName);
    return fallback(kernelName)(args);
  }

  return {
    conv2d: (args) => forward(args, tf.Conv2D, false),
    fusedConv2d: (args) => forward(args, tf.FusedConv2D, true),

    conv2dBackpropInput(args) {
      const backend = args.backend as WasmBackendLike;
      const attrs = args.attrs ?? {};
      const { dy, filter } = args.inputs;
      const inputShape = attrs.inputShape as number[];
      if (isDenseFloat(dy) && isDenseFloat(filter) && inputShape.every((d) => d > 0)) {
        const info = channelsLastInfo(inputShape, filter.shape, attrs, 1);
        if (info && sameShape(info.outShape, dy.shape)) {
          const dims = convDims(info);
          const out = intoOutput(tf.Conv2DBackpropInput, backend, info.inShape, (dx) => {
            addon.conv2dBackpropInput(heap(backend), offsetOf(backend, dy), offsetOf(backend, filter), offsetOf(backend, dx), dims, convEngineCode());
          });
          if (out) return out;
        }
      }
      recordFallback(tf.Conv2DBackpropInput);
      return fallback(tf.Conv2DBackpropInput)(args);
    },

    conv2dBackpropFilter(args) {
      const backend = args.backend as WasmBackendLike;
      const attrs = args.attrs ?? {};
      const { x, dy } = args.inputs;
      const filterShape = attrs.filterShape as number[];
      if (isDenseFloat(x) && isDenseFloat(dy) && filterShape.every((d) => d > 0)) {
        const info = channelsLastInfo(x.shape, filterShape, attrs, 1);
        if (info && sameShape(info.outShape, dy.shape)) {
          const dims = convDims(info);
          const out = intoOutput(tf.Conv2DBackpropFilter, backend, info.filterShape, (dw) => {
            addon.conv2dBackpropFilter(heap(backend), offsetOf(backend, x), offsetOf(backend, dy), offsetOf(backend, dw), dims, convEngineCode());
          });
          if (out) return out;
        }
      }
      recordFallback(tf.Conv2DBackpropFilter);
      return fallback(tf.Conv2DBackpropFilter)(args);
    },
  };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}
