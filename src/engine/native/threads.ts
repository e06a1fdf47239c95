// Native kernel threads. Results depend on the count (oneDNN's convolutions and the threaded
// Sum split their reductions per thread), so a run records the count it used (config
// `threads`) and every job that opens the run applies it again.
import { loadAddon } from './addon';

/** Threads the native kernels use now; null without the addon. */
export function nativeThreads(): number | null {
  const addon = loadAddon().addon;
  return addon ? addon.info().threads : null;
}

/** Use `n` threads (when given and the addon is loaded). */
export function applyNativeThreads(n: number | undefined): void {
  const addon = loadAddon().addon;
  if (addon && n !== undefined) addon.setThreads(n);
}
