// Loads the optional native addon (native/build/Release/ibrar_native.node, built by
// scripts/build-native.js). Loading never throws: a missing or broken build yields a reason.
import * as fs from 'fs';
import * as path from 'path';

/** The addon's exports (native/src/addon.cc). Offsets are byte offsets into `heap`. */
export interface NativeAddon {
  conv2d(heap: Uint8Array, x: number, w: number, bias: number, y: number, dims: Int32Array, relu: number, engine: number): void;
  conv2dBackpropInput(heap: Uint8Array, dy: number, w: number, dx: number, dims: Int32Array, engine: number): void;
  conv2dBackpropFilter(heap: Uint8Array, x: number, dy: number, dw: number, dims: Int32Array, engine: number): void;
  matmul(heap: Uint8Array, a: number, b: number, bias: number, c: number, dims: Int32Array, engine: number): void;
  maxPoolGrad(heap: Uint8Array, x: number, dy: number, dx: number, dims: Int32Array): void;
  reduceSum(heap: Uint8Array, x: number, out: number, rows: number, cols: number, leading: number, scale: number): void;
  batchNormForward(heap: Uint8Array, x: number, gamma: number, beta: number, mean: number, variance: number, y: number, dims: Int32Array, eps: number): void;
  batchNormBackward(
    heap: Uint8Array, dy: number, x: number, y: number, gamma: number, mean: number, variance: number,
    dx: number, dgamma: number, dbeta: number, dims: Int32Array, eps: number,
  ): void;
  addChannelBias(heap: Uint8Array, x: number, bias: number, y: number, rows: number, channels: number): void;
  maxMin(heap: Uint8Array, a: number, b: number, out: number, n: number, max: number): void;
  matMul64(a: Float64Array, b: Float64Array, out: Float64Array, m: number): void;
  sgdStep(heap: Uint8Array, param: number, grad: number, buf: number, paramOut: number, bufOut: number, n: number, hyper: Float64Array): void;
  info(): { runtime: string; threads: number; openblas: boolean };
  setThreads(n: number): void;
  clearCaches(): void;
}

export type AddonLoad = { addon: NativeAddon; path: string } | { addon: null; reason: string };

/** Repository root: this file runs from dist/src/engine/native/. */
const ROOT = path.resolve(__dirname, '..', '..', '..', '..');
export const ADDON_PATH = path.join(ROOT, 'native', 'build', 'Release', 'ibrar_native.node');

let loaded: AddonLoad | null = null;

export function loadAddon(): AddonLoad {
  if (loaded) return loaded;
  loaded = tryLoad();
  return loaded;
}

function tryLoad(): AddonLoad {
  const flag = process.env.IBRAR_NATIVE;
  if (flag === '0' || flag === 'off' || flag === 'false') return { addon: null, reason: 'disabled by IBRAR_NATIVE' };
  const file = process.env.IBRAR_NATIVE_ADDON ?? ADDON_PATH;
  if (!fs.existsSync(file)) return { addon: null, reason: `not built: ${displayPath(file)} is missing (run node scripts/build-native.js; needs libdnnl-dev)` };
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const addon = require(file) as NativeAddon;
    const threads = Number(process.env.IBRAR_NATIVE_THREADS);
    if (Number.isInteger(threads) && threads > 0) addon.setThreads(threads);
    return { addon, path: file };
  } catch (err) {
    return { addon: null, reason: `failed to load: ${(err as Error).message.split('\n')[0]}` };
  }
}

function displayPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}
