// Conv2DBackpropFilter (the conv weight gradient) for the wasm backend, which ships none.
//
//   dW[kh,kw,ci,co] = Σ_{n,oh,ow} x_pad[n, oh·sH + kh, ow·sW + kw, ci] · dy[n,oh,ow,co]
//
// Read with ci as the batch, n as the input channel and (oh,ow) as the filter taps, this is
// itself a stride-1 convolution whose filter is dy dilated by the forward stride:
//
//   xᵀ = x transposed to [Ci,H,W,N],  dyᵀ = dy transposed to [OH,OW,N,Co]
//   conv2d(xᵀ, dyᵀ, stride 1, dilation (sH,sW), forward's top/left padding) → [Ci,KH,KW,Co]
//
// and a last transpose gives [KH,KW,Ci,Co]. All three steps run on the backend's own
// XNNPACK-backed Conv2D and native Transpose, so the cost is one GEMM of the forward size.
import { tf } from '../tf';
import { assertNHWC, explicitPad, release, runWasmKernel, type TensorInfo, type WasmBackend, type WasmKernelArgs } from './wasm-kernel-utils';

type Shape4 = [number, number, number, number];

export function conv2DBackpropFilterWasm(args: WasmKernelArgs): TensorInfo {
  const backend = args.backend as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  assertNHWC('Conv2DBackpropFilter', attrs.dataFormat);

  const info = tf.backend_util.computeConv2DInfo(
    x.shape as Shape4,
    attrs.filterShape,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
    false,
    'channelsLast',
  );
  const { filterHeight: kH, filterWidth: kW, strideHeight: sH, strideWidth: sW } = info;
  const { inHeight: H, inWidth: W, outHeight: oH, outWidth: oW } = info;
  if (dy.shape[1] !== oH || dy.shape[2] !== oW || dy.shape[3] !== info.outChannels) {
    throw new Error(`Conv2DBackpropFilter: dy shape [${dy.shape}] does not match the forward output [${info.outShape}]`);
  }
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // Padding after the input so that the dilated dy filter fits exactly KH (KW) times.
  // Negative when the forward conv never reads the last rows (valid/explicit with stride
  // > 1); then pad nothing and crop the extra output rows instead (the output is tiny).
  const bottom = kH + sH * (oH - 1) - H - top;
  const right = kW + sW * (oW - 1) - W - left;

  const xT = runWasmKernel('Transpose', backend, { x }, { perm: [3, 1, 2, 0] });
  const dyT = runWasmKernel('Transpose', backend, { x: dy }, { perm: [1, 2, 0, 3] });
  let grad = runWasmKernel(
    'Conv2D',
    backend,
    { x: xT, filter: dyT },
    {
      strides: [1, 1],
      dilations: [sH, sW],
      pad: explicitPad(top, Math.max(bottom, 0), left, Math.max(right, 0)),
      dataFormat: 'NHWC',
      dimRoundingMode: undefined,
    },
  );
  release(backend, xT, dyT);
  if (bottom < 0 || right < 0) {
    const cropped = runWasmKernel('Slice', backend, { x: grad }, { begin: [0, 0, 0, 0], size: [-1, kH, kW, -1] });
    release(backend, grad);
    grad = cropped;
  }
  const dW = runWasmKernel('Transpose', backend, { x: grad }, { perm: [1, 2, 0, 3] });
  release(backend, grad);
  return dW;
}

export const conv2DBackpropFilterConfig: tf.KernelConfig = {
  kernelName: tf.Conv2DBackpropFilter,
  backendName: 'wasm',
  kernelFunc: conv2DBackpropFilterWasm as unknown as tf.KernelFunc,
};
