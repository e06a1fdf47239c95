// Seam for kernels ibrar adds to or replaces in the tfjs wasm backend (4.22.0) so that it
// trains correctly. Models and losses never see this: they call tfjs ops, and the engine
// dispatches to whatever is registered here. A native build of these kernels can later
// take over by changing only this file.
//
//   Conv2DBackpropFilter  missing                          → added: a conv of xᵀ by dyᵀ
//   Conv2DBackpropInput   ~10× slower than the forward conv → a conv of dy by the rotated
//                         filter (stock kernel kept for paddings that do not fit)
//   MaxPoolGrad           windows whose max is ≤ 0 lose     → replaced: argmax recomputed,
//                         their gradient; ties → last max     first max wins (as on cpu)
//   Sign                  0 for |x| < ~1e-6: sign-gradient  → exact JS loop over the heap
//                         attack steps skip small gradients
//   BatchMatMul           transposed operands 15–50× slower → explicit Transpose, then the
//                         (every matMul gradient uses them)     stock untransposed product
//   Identity, Cast        full copies; tfjs clones every        → share the buffer (refcount)
//   (same dtype)          tensor a gradient saves
//   Maximum, Minimum,     generic slow paths (35× Add; Tile     → JS loops / block copies
//   Select, Tile          of a row mask 38 ms): tf.where           (./elementwise)
import { tf } from '../tf';
import { conv2DBackpropFilterConfig } from './conv2d-backprop-filter';
import { conv2DBackpropInputConfig, setStockConv2DBackpropInput } from './conv2d-backprop-input';
import { maxPoolGradConfig } from './max-pool-grad';
import { batchMatMulConfig, setStockBatchMatMul } from './batch-mat-mul';
import { signConfig } from './sign';
import { castConfig, identityConfig, setStockCast } from './share';
import { maximumConfig, minimumConfig, selectConfig, setStockElementwise, tileConfig } from './elementwise';

const PATCHES: readonly tf.KernelConfig[] = [conv2DBackpropFilterConfig, conv2DBackpropInputConfig, maxPoolGradConfig, batchMatMulConfig, signConfig, identityConfig, castConfig, maximumConfig, minimumConfig, selectConfig, tileConfig];
const ELEMENTWISE = new Set<tf.KernelConfig>([maximumConfig, minimumConfig, selectConfig, tileConfig]);

function installed(config: tf.KernelConfig): boolean {
  return tf.getKernel(config.kernelName, config.backendName)?.kernelFunc === config.kernelFunc;
}

/**
 * Registers ibrar's wasm kernels (call after the wasm backend is registered). Idempotent.
 * Returns the names of the kernels that are ibrar's after the call.
 */
export function registerWasmKernelPatches(): string[] {
  for (const config of PATCHES) {
    if (installed(config)) continue;
    const stock = tf.getKernel(config.kernelName, config.backendName);
    if (stock) {
      if (config === conv2DBackpropInputConfig) setStockConv2DBackpropInput(stock.kernelFunc);
      if (config === batchMatMulConfig) setStockBatchMatMul(stock.kernelFunc);
      if (config === castConfig) setStockCast(stock.kernelFunc);
      if (ELEMENTWISE.has(config)) setStockElementwise(config.kernelName, stock.kernelFunc);
      tf.unregisterKernel(config.kernelName, config.backendName);
    }
    tf.registerKernel(config);
  }
  return PATCHES.filter(installed).map((c) => c.kernelName);
}
