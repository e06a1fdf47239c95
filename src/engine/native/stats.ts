// Counts of native runs and fallbacks per kernel, so tests and benchmarks can tell which
// path ran, and the last addon error (fallbacks are otherwise silent).
export interface KernelStats {
  native: number;
  fallback: number;
  lastError?: string;
}

const stats = new Map<string, KernelStats>();

function entry(kernel: string): KernelStats {
  let s = stats.get(kernel);
  if (!s) {
    s = { native: 0, fallback: 0 };
    stats.set(kernel, s);
  }
  return s;
}

export function recordNative(kernel: string): void {
  entry(kernel).native++;
}

export function recordFallback(kernel: string): void {
  entry(kernel).fallback++;
}

/** The addon threw; the caller falls back next (and records that). */
export function recordError(kernel: string, error: unknown): void {
  entry(kernel).lastError = error instanceof Error ? error.message : String(error);
}

export function nativeKernelStats(): Record<string, KernelStats> {
  return Object.fromEntries([...stats].map(([k, v]) => [k, { ...v }]));
}

export function resetNativeKernelStats(): void {
  stats.clear();
}
