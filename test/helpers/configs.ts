// Tiny experiment configs for tests: synthetic data, small models, a temp runs folder.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { validateConfig } from '../../src/config/load';
import type { ExperimentConfig } from '../../src/config/schema';

export function tempDir(prefix = 'ibrar-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

type Deep<T> = { [K in keyof T]?: T[K] extends object ? Deep<T[K]> : T[K] };

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof a[k] === 'object' ? merge(a[k] as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function tinyConfig(overrides: Deep<Record<string, unknown>> = {}): ExperimentConfig {
  const base = {
    name: 'tiny',
    seed: 3,
    backend: 'wasm',
    runsDir: tempDir('ibrar-runs-'),
    data: { dataset: 'synthetic', synthetic: { height: 8, width: 8, channels: 3, classes: 4, trainSize: 256, testSize: 128, noise: 0.15 } },
    model: { arch: 'small-cnn', width: 0.25 },
    train: { method: 'ce', epochs: 2, batchSize: 32, evalBatchSize: 128, lr: 0.05, momentum: 0.9, schedule: { type: 'none' } },
  };
  return validateConfig(merge(base, overrides as Record<string, unknown>));
}
