// Native batch normalisation (+ optional fused ReLU) for the wasm backend, as two custom
// kernels with a registered gradient:
//   IbrarBatchNorm      inputs x, gamma, beta, mean, variance; attrs eps, training, relu
//                       → [y, mean, variance] (training: the batch's, biased; eval: the inputs)
//   IbrarBatchNormGrad  inputs dy, x, y, gamma, mean, variance; attrs eps, training, relu, want
//                       → want 'all': [dx, dgamma, dbeta]; 'dx': [dx]; 'params': [dgamma, dbeta]
// models/layers.ts uses them when registered (wasm backend with the addon loaded) and plain
// tfjs ops otherwise; tests check the two agree.
import { tf } from '../tf';
import type { NativeAddon } from './addon';
import { activeWasmServes, heap, offsetOf, type WasmBackendLike } from './heap';
import { recordError, recordNative } from './stats';

export const BATCH_NORM = 'IbrarBatchNorm';
export const BATCH_NORM_GRAD = 'IbrarBatchNormGrad';

export interface BatchNormAttrs {
  eps: number;
  training: boolean;
  relu: boolean;
}

type Want = 'all' | 'dx' | 'params';

function dims(x: tf.TensorInfo, a: BatchNormAttrs): Int32Array {
  const c = x.shape[x.shape.length - 1];
  return Int32Array.from([tf.util.sizeFromShape(x.shape) / c, c, a.training ? 1 : 0, a.relu ? 1 : 0]);
}

function checkFloat(kernelName: string, inputs: Record<string, tf.TensorInfo>): void {
  for (const [name, t] of Object.entries(inputs)) {
    if (t.dtype !== 'float32') throw new Error(`${kernelName}: input '${name}' must be float32, got ${t.dtype}`);
  }
}

export function makeBatchNormKernels(addon: NativeAddon): { forward: tf.KernelFunc; backward: tf.KernelFunc } {
  return {
    forward(args) {
      const backend = args.backend as WasmBackendLike;
      const { x, gamma, beta, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
      const attrs = args.attrs as unknown as BatchNormAttrs;
      checkFloat(BATCH_NORM, { x, gamma, beta, mean, variance });
      const c = x.shape[x.shape.length - 1];
      const y = backend.makeOutput([...x.shape], 'float32');
      const m = backend.makeOutput([c], 'float32');
      const v = backend.makeOutput([c], 'float32');
      try {
        const h = heap(backend);
        if (!attrs.training) {
          // Eval: the statistics are inputs; copy them to the outputs the kernel reads.
          const f = new Float32Array(h.buffer);
          f.copyWithin(offsetOf(backend, m) / 4, offsetOf(backend, mean) / 4, offsetOf(backend, mean) / 4 + c);
          f.copyWithin(offsetOf(backend, v) / 4, offsetOf(backend, variance) / 4, offsetOf(backend, variance) / 4 + c);
        }
        addon.batchNormForward(h, offsetOf(backend, x), offsetOf(backend, gamma), offsetOf(backend, beta), offsetOf(backend, m), offsetOf(backend, v), offsetOf(backend, y), dims(x, attrs), attrs.eps);
        recordNative(BATCH_NORM);
        return [y, m, v];
      } catch (err) {
        for (const t of [y, m, v]) backend.disposeData(t.dataId, true);
        recordError(BATCH_NORM, err);
        throw err;
      }
    },
    backward(args) {
      const backend = args.backend as WasmBackendLike;
      const { dy, x, y, gamma, mean, variance } = args.inputs as Record<string, tf.TensorInfo>;
      const attrs = args.attrs as unknown as BatchNormAttrs & { want: Want };
      checkFloat(BATCH_NORM_GRAD, { dy, x, y, gamma, mean, variance });
      const c = x.shape[x.shape.length - 1];
      const outs: tf.TensorInfo[] = [];
      const dx = attrs.want !== 'params' ? backend.makeOutput([...x.shape], 'float32') : null;
      if (dx) outs.push(dx);
      const dg = attrs.want !== 'dx' ? backend.makeOutput([c], 'float32') : null;
      const db = attrs.want !== 'dx' ? backend.makeOutput([c], 'float32') : null;
      if (dg && db) outs.push(dg, db);
      try {
        const off = (t: tf.TensorInfo | null) => (t ? offsetOf(backend, t) : -1);
        addon.batchNormBackward(heap(backend), off(dy), off(x), attrs.relu ? off(y) : -1, off(gamma), off(mean), off(variance), off(dx), off(dg), off(db), dims(x, attrs), attrs.eps);
        recordNative(BATCH_NORM_GRAD);
        return outs;
      } catch (err) {
        for (const t of outs) backend.disposeData(t.dataId, true);
        recordError(BATCH_NORM_GRAD, err);
        throw err;
      }
    },
  };
}

/**
 * Gradient of IbrarBatchNorm. Training: dx needs dγ and dβ anyway, so one kernel call makes
 * all three. Eval (attacks differentiate only the input): each thunk asks for what it returns,
 * and the engine calls only the thunks on the path to the differentiated inputs.
 */
export function registerBatchNormGradient(): void {
  if (tf.getGradient(BATCH_NORM)) return;
  tf.registerGradient({
    kernelName: BATCH_NORM,
    inputsToSave: ['x', 'gamma'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const [x, gamma, y, mean, variance] = saved as tf.Tensor[];
      const a = attrs as unknown as BatchNormAttrs;
      const run = (want: Want) =>
        tf.engine().runKernel(BATCH_NORM_GRAD, { dy, x, y, gamma, mean, variance }, { eps: a.eps, training: a.training, relu: a.relu, want } as unknown as tf.NamedAttrMap) as tf.Tensor[];
      const zeros = () => tf.zerosLike(mean);
      if (a.training) {
        const [dx, dg, db] = run('all');
        return { x: () => dx, gamma: () => dg, beta: () => db, mean: zeros, variance: zeros };
      }
      return {
        x: () => run('dx')[0],
        gamma: () => {
          const [dg, db] = run('params');
          db.dispose();
          return dg;
        },
        beta: () => {
          const [dg, db] = run('params');
          dg.dispose();
          return db;
        },
        mean: zeros,
        variance: zeros,
      };
    },
  });
}

/** Whether the active backend serves IbrarBatchNorm (wasm with the native addon). */
export function nativeBatchNormActive(): boolean {
  return activeWasmServes(BATCH_NORM);
}

/**
 * y = [relu](batchnorm(x)) over the last axis with the native kernels; returns the batch
 * statistics in training (biased variance) or the given ones in eval.
 */
export function nativeBatchNorm(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  attrs: BatchNormAttrs,
): { y: tf.Tensor; mean: tf.Tensor1D; variance: tf.Tensor1D } {
  const [y, m, v] = tf.engine().runKernel(BATCH_NORM, { x, gamma, beta, mean, variance }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
  return { y, mean: m as tf.Tensor1D, variance: v as tf.Tensor1D };
}
