// Loader for the tfjs WebGPU backend in Node: a Dawn GPU from the `webgpu` npm package
// (prebuilt dawn.node inside the tarball) stands in for the browser's `navigator.gpu`.
//
// Why it must be done here, in this order:
//  - '@tensorflow/tfjs-backend-webgpu' registers its backend only if `navigator.gpu` exists
//    when the module is first evaluated, so the GPU is installed before it is required.
//  - tfjs asks for an adapter with only a power preference; Dawn's OpenGL ES path (the one
//    that works on stock Mesa 22) needs `featureLevel: 'compatibility'`, so `navigator.gpu`
//    is a thin wrapper that adds the feature level.
//  - Mesa's EGL needs EGL_PLATFORM=surfaceless without a display server.
//  - `tensor.dataSync()` of a GPU-resident tensor throws in Node (tfjs reads back through an
//    OffscreenCanvas, which Node lacks): read with `await tensor.data()`.
//
// Environment (all optional):
//   IBRAR_WEBGPU_DAWN           comma-separated Dawn toggles for `create()`, e.g.
//                               `backend=vulkan` or `backend=opengles`. Unset: Dawn's default
//                               (Vulkan on Linux), then `backend=opengles` if that finds nothing.
//   IBRAR_WEBGPU_FEATURE_LEVEL  `core` or `compatibility`; default `compatibility` for the
//                               OpenGL (ES) backends, `core` otherwise.
//   IBRAR_WEBGPU_POWER          `high-performance` (default) or `low-power`.
import { pathToFileURL } from 'url';
import { tf } from './tf';

export type FeatureLevel = 'core' | 'compatibility';
export type PowerPreference = 'high-performance' | 'low-power';

/** One way of asking Dawn for an adapter. */
export interface DawnAttempt {
  /** Toggles for `create()`, e.g. `['backend=opengles']`. */
  dawn: string[];
  featureLevel: FeatureLevel;
}

export interface WebGpuPlan {
  /** Tried in order; the first that yields an adapter is used. */
  attempts: DawnAttempt[];
  powerPreference: PowerPreference;
}

export interface WebGpuLoaded {
  attempt: DawnAttempt;
  /** Adapter as Dawn describes it, e.g. `llvmpipe (OpenGL ES 3.2 Mesa 22.3.6)`. */
  adapter: string;
  /** Why earlier attempts found no adapter. */
  skipped: string[];
  /** Kernels ibrar replaced on the webgpu backend (see patchAddN). */
  patchedKernels: string[];
}

// The slice of the WebGPU API this module touches. The `webgpu` package's own typings pull
// in @webgpu/types as globals, which ibrar's Node-only compile does not want.
interface AdapterInfoLike {
  vendor?: string;
  architecture?: string;
  device?: string;
  description?: string;
}
interface AdapterLike {
  info?: AdapterInfoLike;
}
interface GpuLike {
  requestAdapter(options?: Record<string, unknown>): Promise<AdapterLike | null>;
  readonly wgslLanguageFeatures?: unknown;
  getPreferredCanvasFormat?(): string;
}
interface DawnModule {
  create(options: string[]): GpuLike;
  globals: Record<string, unknown>;
}

const GL_BACKENDS = ['backend=opengl', 'backend=opengles'];
const DEFAULT_ATTEMPTS: DawnAttempt[] = [
  { dawn: [], featureLevel: 'core' },
  { dawn: ['backend=opengles'], featureLevel: 'compatibility' },
];

function usesGl(dawn: readonly string[]): boolean {
  return dawn.some((t) => GL_BACKENDS.includes(t.trim().toLowerCase()));
}

/** The adapter requests described by the IBRAR_WEBGPU_* variables (see the header). */
export function webgpuPlanFromEnv(env: NodeJS.ProcessEnv = process.env): WebGpuPlan {
  const levelVar = env.IBRAR_WEBGPU_FEATURE_LEVEL?.trim();
  if (levelVar && levelVar !== 'core' && levelVar !== 'compatibility') {
    throw new Error(`IBRAR_WEBGPU_FEATURE_LEVEL must be 'core' or 'compatibility', found '${levelVar}'`);
  }
  const powerVar = env.IBRAR_WEBGPU_POWER?.trim();
  if (powerVar && powerVar !== 'high-performance' && powerVar !== 'low-power') {
    throw new Error(`IBRAR_WEBGPU_POWER must be 'high-performance' or 'low-power', found '${powerVar}'`);
  }
  const dawnVar = env.IBRAR_WEBGPU_DAWN?.trim();
  const base = dawnVar
    ? [{ dawn: dawnVar.split(',').map((t) => t.trim()).filter(Boolean), featureLevel: 'core' as FeatureLevel }]
    : DEFAULT_ATTEMPTS;
  const attempts = base.map((a) => ({
    dawn: [...a.dawn],
    featureLevel: (levelVar as FeatureLevel | undefined) ?? (usesGl(a.dawn) ? 'compatibility' : a.featureLevel),
  }));
  return { attempts, powerPreference: (powerVar as PowerPreference | undefined) ?? 'high-performance' };
}

function describeAttempt(a: DawnAttempt): string {
  return `${a.dawn.length ? a.dawn.join(',') : 'dawn default'}, featureLevel ${a.featureLevel}`;
}

function describeAdapter(info: AdapterInfoLike | undefined): string {
  if (!info) return 'unnamed adapter';
  const name = [info.vendor, info.device].filter((s) => s && s.length > 0).join(' ') || 'unnamed adapter';
  return info.description ? `${name} (${info.description})` : name;
}

async function importDawn(): Promise<DawnModule> {
  let resolved: string;
  try {
    resolved = require.resolve('webgpu');
  } catch {
    throw new Error("the 'webgpu' package (Dawn for Node) is not installed: npm install webgpu@0.6.2");
  }
  // `webgpu` is an ES module. A real import() (not TypeScript's require() rewrite) loads it on
  // every Node 20, and a file URL keeps resolution independent of the working directory.
  const importEsm = new Function('url', 'return import(url)') as (url: string) => Promise<DawnModule>;
  const mod = await importEsm(pathToFileURL(resolved).href);
  if (typeof mod.create !== 'function' || typeof mod.globals !== 'object') {
    throw new Error(`the 'webgpu' package at ${resolved} does not export create() and globals`);
  }
  return mod;
}

/** Browser globals tfjs expects (GPUBufferUsage, GPUMapMode, ...); existing ones are kept. */
function installGlobals(globals: Record<string, unknown>): void {
  const g = globalThis as Record<string, unknown>;
  for (const [name, value] of Object.entries(globals)) {
    if (!(name in g)) Object.defineProperty(g, name, { value, writable: true, configurable: true });
  }
}

/** `navigator.gpu` that requests adapters the way the chosen attempt did. */
function installNavigatorGpu(gpu: GpuLike, attempt: DawnAttempt, powerPreference: PowerPreference): void {
  const wrapped: GpuLike = {
    requestAdapter: (options) => gpu.requestAdapter({ powerPreference, ...options, featureLevel: attempt.featureLevel }),
    get wgslLanguageFeatures() {
      return gpu.wgslLanguageFeatures;
    },
    getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat?.() ?? 'bgra8unorm',
  };
  const g = globalThis as { navigator?: object };
  // Node 21+ has a global navigator (a getter); Node 20 has none.
  if (g.navigator) Object.defineProperty(g.navigator, 'gpu', { value: wrapped, configurable: true, writable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu: wrapped }, configurable: true, writable: true });
}

let loaded: Promise<WebGpuLoaded> | null = null;

/**
 * Create the Dawn GPU, install `navigator.gpu`, load '@tensorflow/tfjs-backend-webgpu' and make
 * `webgpu` the active tfjs backend. Idempotent: later calls reuse the first GPU (the backend
 * module registers itself only once per process) and just re-activate the backend.
 * Throws with a message naming what is missing when no adapter or package is found.
 */
export async function loadWebGpu(plan: WebGpuPlan = webgpuPlanFromEnv()): Promise<WebGpuLoaded> {
  if (!loaded) {
    loaded = discover(plan);
    loaded.catch(() => (loaded = null));
  }
  const result = await loaded;
  const ok = await tf.setBackend('webgpu');
  await tf.ready();
  if (!ok || tf.getBackend() !== 'webgpu') {
    throw new Error(`the tfjs webgpu backend did not initialise on ${result.adapter}`);
  }
  guardBackend(tf.backend() as unknown as GuardedBackend);
  return { ...result, patchedKernels: addNPatched ? ['AddN'] : [] };
}

interface DeviceLike {
  limits: { maxStorageBuffersPerShaderStage: number };
  onuncapturederror: ((ev: { error: { message: string } }) => void) | null;
}
type DataId = object;
interface GuardedBackend {
  device: DeviceLike;
  read(dataId: DataId): Promise<unknown>;
  readSync(dataId: DataId): unknown;
  disposeData(dataId: DataId, force?: boolean): boolean;
  [guarded]?: true;
}
const guarded = Symbol('ibrar.webgpuGuarded');

/** Thrown by `dataSync()`/`arraySync()`/`bufferSync()` of a GPU-resident tensor on webgpu. */
export class WebGpuSyncReadError extends Error {
  constructor(cause: Error) {
    super(
      'a synchronous read (dataSync/arraySync) of a GPU tensor on the webgpu backend: tfjs does it through ' +
        `OffscreenCanvas, which Node lacks (${cause.message}). This code path needs \`await tensor.data()\`; ` +
        'use backend tensorflow, wasm or cpu for it meanwhile',
    );
    this.name = 'WebGpuSyncReadError';
  }
}

/** A WebGPU validation error was raised: some kernel's results are garbage. */
export class WebGpuValidationError extends Error {
  constructor(message: string) {
    super(`the webgpu backend raised a validation error, so results since then are not trustworthy: ${message.split('\n')[0]}`);
    this.name = 'WebGpuValidationError';
  }
}

// Once per backend instance:
//  - tfjs's bare "OffscreenCanvas is not defined" on sync reads becomes a message saying what to change;
//  - a WebGPU validation error, which tfjs ignores (the failed kernel leaves stale memory as its
//    result, and Dawn only prints to stderr), makes every later read throw instead of returning
//    wrong numbers;
//  - AddN is split to fit the device's storage-buffer limit.
function guardBackend(backend: GuardedBackend): void {
  if (backend[guarded]) return;
  let firstError: string | null = null;
  backend.device.onuncapturederror = (ev) => {
    firstError ??= ev.error.message;
  };
  const check = (): void => {
    if (firstError !== null) throw new WebGpuValidationError(firstError);
  };
  const read = backend.read.bind(backend);
  backend.read = async (dataId) => {
    const values = await read(dataId);
    check();
    return values;
  };
  const readSync = backend.readSync.bind(backend);
  backend.readSync = (dataId) => {
    let values: unknown;
    try {
      values = readSync(dataId);
    } catch (err) {
      if (err instanceof ReferenceError && err.message.includes('OffscreenCanvas')) throw new WebGpuSyncReadError(err);
      throw err;
    }
    check();
    return values;
  };
  patchAddN(Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1));
  backend[guarded] = true;
}

let addNPatched = false;

// tfjs's webgpu AddN binds every input as its own storage buffer and does not split when there
// are more than the device allows (8 per stage by default, output included): with 8+ inputs
// (e.g. a sum over every parameter's gradient) the pipeline is invalid and the output stale.
// Sum groups of at most `maxInputs` with the original kernel, then sum the partial sums.
function patchAddN(maxInputs: number): void {
  if (addNPatched) return;
  const kernel = tf.getKernel('AddN', 'webgpu');
  if (!kernel) return;
  const original = kernel.kernelFunc;
  tf.unregisterKernel('AddN', 'webgpu');
  tf.registerKernel({
    ...kernel,
    kernelFunc: (args) => {
      const backend = args.backend as unknown as GuardedBackend;
      let level = args.inputs as unknown as tf.TensorInfo[];
      const partial: tf.TensorInfo[] = [];
      while (level.length > maxInputs) {
        const next: tf.TensorInfo[] = [];
        for (let i = 0; i < level.length; i += maxInputs) {
          const group = level.slice(i, i + maxInputs);
          if (group.length === 1) {
            next.push(group[0]);
            continue;
          }
          const sum = original({ ...args, inputs: group as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
          partial.push(sum);
          next.push(sum);
        }
        level = next;
      }
      const out = original({ ...args, inputs: level as unknown as tf.NamedTensorInfoMap });
      // tfjs defers freeing buffers that queued GPU work still uses.
      for (const t of partial) backend.disposeData(t.dataId);
      return out;
    },
  });
  addNPatched = true;
}

async function discover(plan: WebGpuPlan): Promise<WebGpuLoaded> {
  const dawn = await importDawn();
  const skipped: string[] = [];
  for (const attempt of plan.attempts) {
    // Mesa's EGL otherwise looks for an X11/Wayland display and fails to initialise.
    if (usesGl(attempt.dawn) && !process.env.EGL_PLATFORM) process.env.EGL_PLATFORM = 'surfaceless';
    const gpu = dawn.create(attempt.dawn);
    const adapter = await gpu.requestAdapter({ powerPreference: plan.powerPreference, featureLevel: attempt.featureLevel });
    if (!adapter) {
      skipped.push(`${describeAttempt(attempt)}: no adapter`);
      continue;
    }
    installGlobals(dawn.globals);
    installNavigatorGpu(gpu, attempt, plan.powerPreference);
    try {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      require('@tensorflow/tfjs-backend-webgpu');
    } catch (err) {
      throw new Error(`install @tensorflow/tfjs-backend-webgpu@4.22.0 (${(err as Error).message.split('\n')[0]})`);
    }
    if (!tf.findBackendFactory('webgpu')) {
      throw new Error('@tensorflow/tfjs-backend-webgpu was loaded before navigator.gpu existed and did not register');
    }
    return { attempt, adapter: describeAdapter(adapter.info), skipped, patchedKernels: [] };
  }
  throw new Error(
    `no WebGPU adapter (${skipped.join('; ')}). Without a GPU driver, Mesa's llvmpipe serves: ` +
      'through OpenGL ES (apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri; tried by default when ' +
      'IBRAR_WEBGPU_DAWN is unset) or through Vulkan with a newer lavapipe (mesa-vulkan-drivers from ' +
      "bookworm-backports; Debian 12's own is too old for Dawn)",
  );
}
