// Backend selection. `auto` prefers a native TensorFlow binding (GPU first), then the
// embedded wasm backend (patched for training, see ./kernels), then the pure-JS cpu backend.
import { tf } from './tf';
import { UserError } from '../errors';
import { registerWasmKernelPatches } from './kernels';
import { registerNativeKernels } from './native';
import { loadWebGpu } from './webgpu';

import type { BackendName } from './backends';
export { BACKENDS, type BackendName } from './backends';

export interface BackendInfo {
  /** What was asked for. */
  requested: BackendName;
  /** tfjs backend name in use (`tensorflow`, `wasm`, `cpu`, `webgpu`). */
  active: string;
  /** Package that provided it. */
  provider: string;
  tfjsVersion: string;
  simd?: boolean;
  threads?: boolean;
  /** Kernels ibrar registered or replaced on this backend. */
  patchedKernels: string[];
  /** Why earlier candidates of `auto` were skipped. */
  skipped: string[];
  /** Native (oneDNN) kernels over the wasm backend: loaded, or why not. */
  native?: { loaded: boolean; kernels: string[]; reason?: string; runtime?: string };
}

let current: BackendInfo | null = null;

export function backendInfo(): BackendInfo | null {
  return current;
}

function tryRequire(name: string): string | null {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    require(name);
    return null;
  } catch (err) {
    return (err as Error).message.split('\n')[0];
  }
}

async function activate(name: string): Promise<boolean> {
  try {
    const ok = await tf.setBackend(name);
    if (!ok) return false;
    await tf.ready();
    return tf.getBackend() === name;
  } catch {
    return false;
  }
}

async function tryTensorflow(skipped: string[]): Promise<string | null> {
  for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    const err = tryRequire(pkg);
    if (err === null && (await activate('tensorflow'))) return pkg;
    skipped.push(`${pkg}: ${err ?? 'loaded but the tensorflow backend did not initialise'}`);
  }
  return null;
}

async function tryWasm(skipped: string[]): Promise<boolean> {
  const err = tryRequire('@tensorflow/tfjs-backend-wasm');
  if (err !== null) {
    skipped.push(`@tensorflow/tfjs-backend-wasm: ${err}`);
    return false;
  }
  if (!(await activate('wasm'))) {
    skipped.push('@tensorflow/tfjs-backend-wasm: backend did not initialise');
    return false;
  }
  return true;
}

/**
 * Select and initialise a backend. Idempotent for the same request. Throws a user-facing
 * error when an explicitly requested backend is unavailable.
 */
export async function initBackend(requested: BackendName = 'auto'): Promise<BackendInfo> {
  if (current && current.requested === requested) return current;
  // PROD silences tfjs's console advert for tfjs-node (printed on first cpu-backend use)
  // and skips its debug-only checks; IS_TEST would instead turn on per-kernel leak checks.
  tf.env().set('PROD', true);
  const skipped: string[] = [];
  let provider: string | null = null;
  let patched: string[] = [];
  let native: BackendInfo['native'];

  if (requested === 'tensorflow' || requested === 'auto') {
    provider = await tryTensorflow(skipped);
    if (!provider && requested === 'tensorflow') {
      throw new BackendUnavailableError(
        'tensorflow',
        `install @tensorflow/tfjs-node-gpu@4.22.0 (CUDA) or @tensorflow/tfjs-node@4.22.0 next to ibrar.\n  ${skipped.join('\n  ')}`,
      );
    }
  }
  if (!provider && requested === 'webgpu') {
    // Dawn through the `webgpu` package; options in IBRAR_WEBGPU_* (see ./webgpu).
    try {
      const gpu = await loadWebGpu();
      provider = `@tensorflow/tfjs-backend-webgpu on ${gpu.adapter} [${gpu.attempt.dawn.join(',') || 'dawn default'}, ${gpu.attempt.featureLevel}]`;
      skipped.push(...gpu.skipped.map((s) => `webgpu ${s}`));
      patched = gpu.patchedKernels;
    } catch (err) {
      throw new BackendUnavailableError('webgpu', (err as Error).message);
    }
  }
  if (!provider && (requested === 'wasm' || requested === 'auto')) {
    if (await tryWasm(skipped)) {
      provider = '@tensorflow/tfjs-backend-wasm';
      patched = registerWasmKernelPatches();
      // Optional oneDNN kernels take over the heavy ops where the addon was built (npm ci builds
      // it when libdnnl-dev is installed); otherwise the patched wasm kernels stay in place.
      const res = registerNativeKernels();
      native = { loaded: res.loaded, kernels: res.kernels, reason: res.reason, runtime: res.runtime };
      if (res.loaded) patched = [...new Set([...patched, ...res.kernels])];
    } else if (requested === 'wasm') {
      throw new BackendUnavailableError('wasm', skipped.join('; '));
    }
  }
  if (!provider) {
    if (!(await activate('cpu'))) throw new BackendUnavailableError('cpu', 'the cpu backend failed to initialise');
    provider = '@tensorflow/tfjs-backend-cpu';
  }

  const info: BackendInfo = {
    requested,
    active: tf.getBackend(),
    provider,
    tfjsVersion: tf.version_core,
    patchedKernels: patched,
    skipped,
    ...(native ? { native } : {}),
  };
  if (info.active === 'wasm') {
    info.simd = Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'));
    info.threads = Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'));
  }
  current = info;
  return info;
}

export class BackendUnavailableError extends UserError {
  constructor(
    readonly backend: string,
    detail: string,
  ) {
    super(`backend '${backend}' is not available: ${detail}`, undefined, 'backend');
    this.name = 'BackendUnavailableError';
  }
}
