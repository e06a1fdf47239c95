// Host float64 algebra through the addon when it is loaded (the HSIC estimators' m×m products:
// ~12 per IB-RAR step, ~1.5 ms each in JS at m = 100). Not tied to the wasm backend: the arrays
// are ordinary Float64Arrays, so this serves every backend.
import { loadAddon } from './addon';

/** Below this m the JS loop is as fast as a call into the addon. */
const MIN_NATIVE_M = 32;

/** out = a·b (m×m, row-major) natively; false when the addon is not loaded or m is small. */
export function nativeMatMul64(a: Float64Array, b: Float64Array, m: number, out: Float64Array): boolean {
  if (m < MIN_NATIVE_M) return false;
  const load = loadAddon();
  if (!load.addon || typeof load.addon.matMul64 !== 'function') return false;
  load.addon.matMul64(a, b, out, m);
  return true;
}
