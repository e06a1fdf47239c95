// One SGD update per parameter as a single native kernel (IbrarSgdStep) instead of five
// single-threaded wasm ops (decay, momentum, step): for VGG16-BN's 15 M parameters those took
// ~100 ms of a 1.2 s training step. Same float32 operations in the same order as
// train/optimizer.ts's tfjs ops, so the result is bit-identical (tested).
//   inputs param, grad[, buf]; attrs lr, momentum, weightDecay, started → [param'[, buf']]
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { activeWasmServes, heap, isDenseFloat, offsetOf, type WasmBackendLike } from './heap';
import { recordError, recordNative } from './stats';

export const SGD_STEP = 'IbrarSgdStep';

export interface SgdStepAttrs {
  lr: number;
  momentum: number;
  weightDecay: number;
  started: boolean;
}

export function makeSgdKernel(addon: NativeAddon): tf.KernelFunc {
  return (args) => {
    const backend = args.backend as WasmBackendLike;
    const { param, grad, buf } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const a = args.attrs as unknown as SgdStepAttrs;
    const useMomentum = a.momentum > 0;
    if (!isDenseFloat(param) || !isDenseFloat(grad) || (useMomentum && !isDenseFloat(buf)) || !tf.util.arraysEqual(param.shape, grad.shape)) {
      throw new Error(`${SGD_STEP}: needs dense float32 param, grad${useMomentum ? ' and buf' : ''} of one shape`);
    }
    const n = tf.util.sizeFromShape(param.shape);
    const pOut = backend.makeOutput([...param.shape], 'float32');
    const bOut = useMomentum ? backend.makeOutput([...param.shape], 'float32') : null;
    try {
      const off = (t: tf.TensorInfo | null | undefined) => (t ? offsetOf(backend, t) : -1);
      addon.sgdStep(heap(backend), off(param), off(grad), useMomentum ? off(buf) : -1, off(pOut), off(bOut), n, Float64Array.from([a.lr, a.momentum, a.weightDecay, a.started ? 1 : 0]));
      recordNative(SGD_STEP);
      return bOut ? [pOut, bOut] : [pOut];
    } catch (err) {
      for (const t of bOut ? [pOut, bOut] : [pOut]) backend.disposeData(t.dataId, true);
      recordError(SGD_STEP, err);
      throw err;
    }
  };
}

/** Whether the active backend serves IbrarSgdStep (wasm with the native addon). */
export function nativeSgdActive(): boolean {
  return activeWasmServes(SGD_STEP);
}

/** [param', buf'] (buf' only with momentum) for one parameter, natively. */
export function nativeSgdStep(param: tf.Tensor, grad: tf.Tensor, buf: tf.Tensor | null, attrs: SgdStepAttrs): tf.Tensor[] {
  const inputs: tf.NamedTensorMap = buf ? { param, grad, buf } : { param, grad };
  return tf.engine().runKernel(SGD_STEP, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
}
