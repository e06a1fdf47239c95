// Memory over long runs: tf.memory().numTensors / numBytes and process RSS sampled while
// training (CE, IB-RAR, PGD-AT) for many steps and while evaluating, to show they stay flat
// (no tensor leak, no growth in RSS beyond 5% after warm-up) and that evaluation memory does
// not grow with the number of test examples.
//
//   node dist/bench/memory.js                 # 1,000 steps of each method + evaluations
//   node dist/bench/memory.js --steps 300 --backend cpu
//
// The test test/reliability/memory.test.ts runs the same measurements, shorter.
import * as v8 from 'v8';
import * as vm from 'vm';
import { tf } from '../src/engine/tf';
import { validateConfig } from '../src/config/load';
import type { ExperimentConfig } from '../src/config/schema';
import { train } from '../src/jobs/train';
import { evaluateRun } from '../src/jobs/eval';

export interface MemorySample {
  /** Training step (1-based) or evaluation batch. */
  at: number;
  numTensors: number;
  numBytes: number;
  rssMiB: number;
  heapMiB: number;
}

export interface MemoryReport {
  label: string;
  samples: MemorySample[];
  /** The sample that ends the warm-up (first 20%): allocations of first use are done by then. */
  warm: MemorySample;
  end: MemorySample;
  /** numTensors of every sample after warm-up equals the warm-up one's. */
  tensorsFlat: boolean;
  /** Largest RSS after warm-up ÷ RSS at the end of warm-up − 1. */
  rssGrowth: number;
  seconds: number;
}

let gcFn: (() => void) | null = null;
/** A full GC before each sample, so RSS reflects live memory rather than GC timing. */
function collect(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

export function sample(at: number): MemorySample {
  collect();
  const m = tf.memory();
  const u = process.memoryUsage();
  return { at, numTensors: m.numTensors, numBytes: m.numBytes, rssMiB: u.rss / 2 ** 20, heapMiB: u.heapUsed / 2 ** 20 };
}

export function summarize(label: string, samples: MemorySample[], seconds: number): MemoryReport {
  const warmIndex = Math.max(1, Math.floor(samples.length * 0.2));
  const warm = samples[warmIndex];
  const after = samples.slice(warmIndex);
  return {
    label,
    samples,
    warm,
    end: samples[samples.length - 1],
    tensorsFlat: after.every((s) => s.numTensors === warm.numTensors),
    rssGrowth: Math.max(...after.map((s) => s.rssMiB)) / warm.rssMiB - 1,
    seconds,
  };
}

/** A tiny experiment: synthetic 8x8x3 data, small-cnn at width 0.25, 8 steps per epoch. */
export function tinyExperiment(runsDir: string, backend: string, method: 'ce' | 'ibrar' | 'pgd-at', epochs: number, attackSteps = 3): ExperimentConfig {
  return validateConfig({
    name: `memory-${method}`,
    seed: 1,
    backend,
    runsDir,
    data: { dataset: 'synthetic', synthetic: { height: 8, width: 8, channels: 3, classes: 4, trainSize: 256, testSize: 256 } },
    model: { arch: 'small-cnn', width: 0.25 },
    train: {
      method: method === 'pgd-at' ? 'pgd-at' : 'ce',
      epochs,
      batchSize: 32,
      evalBatchSize: 64,
      lr: 0.02,
      schedule: { type: 'none' },
      checkpointEvery: 4,
      attack: { eps: 0.03, steps: attackSteps },
    },
    ib:
      method === 'ibrar'
        ? { enabled: true, layers: 'all', alpha: 0.008, beta: 0.08, mask: { enabled: true, rule: 'code', lowY: 2, highX: 2, every: 4 } }
        : { enabled: false },
  });
}

/** Train `steps` steps (a whole number of 8-step epochs), sampling every `every` steps. */
export async function trainingMemory(label: string, cfg: ExperimentConfig, steps: number, every: number): Promise<{ report: MemoryReport; runDir: string }> {
  const samples: MemorySample[] = [];
  let step = 0;
  const t0 = Date.now();
  const res = await train({
    cfg: { ...cfg, train: { ...cfg.train, epochs: Math.ceil(steps / 8) } },
    progress: { onStep: () => void (++step % every === 0 && samples.push(sample(step))) },
  });
  return { report: summarize(label, samples, (Date.now() - t0) / 1000), runDir: res.runDir };
}

/** Evaluate the first `n` test examples of a run in batches of `batch`, sampling after every batch. */
export async function evalMemory(label: string, runDir: string, n: number, batch: number, attacks: string[]): Promise<MemoryReport> {
  const samples: MemorySample[] = [];
  const t0 = Date.now();
  await evaluateRun(
    { runDir, checkpoint: 'last', attacks, eps: 0.03, steps: 5, n, batchSize: batch, seed: 0 },
    { progress: { onBatch: (i) => void samples.push(sample(i.done / batch)) } },
  );
  return summarize(label, samples, (Date.now() - t0) / 1000);
}

export function formatReport(r: MemoryReport): string {
  return (
    `${r.label.padEnd(34)} ${String(r.samples.length).padStart(4)} samples, ${r.seconds.toFixed(1).padStart(6)} s | ` +
    `tensors ${r.warm.numTensors} → ${r.end.numTensors} (${r.tensorsFlat ? 'flat' : 'GROWS'}) | ` +
    `tensor bytes ${r.warm.numBytes} → ${r.end.numBytes} | ` +
    `RSS ${r.warm.rssMiB.toFixed(1)} → ${r.end.rssMiB.toFixed(1)} MiB (max growth ${(100 * r.rssGrowth).toFixed(2)}%) | ` +
    `heap ${r.warm.heapMiB.toFixed(1)} → ${r.end.heapMiB.toFixed(1)} MiB`
  );
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: string) => {
    const i = process.argv.indexOf(name);
    return i >= 0 ? process.argv[i + 1] : dflt;
  };
  const steps = Number(arg('--steps', '1000'));
  const backend = arg('--backend', 'wasm');
  const os = await import('os');
  const runs = (await import('fs')).mkdtempSync((await import('path')).join(os.tmpdir(), 'ibrar-memory-'));
  const reports: MemoryReport[] = [];
  let runDir = '';
  for (const method of ['ce', 'ibrar', 'pgd-at'] as const) {
    const cfg = tinyExperiment(runs, backend, method, 1, 5);
    const out = await trainingMemory(`train ${method} × ${steps} steps`, cfg, steps, 25);
    reports.push(out.report);
    console.log(formatReport(out.report));
    runDir = out.runDir;
  }
  for (const n of [64, 256]) {
    const r = await evalMemory(`eval fgsm+pgd, n=${n}, batch 16`, runDir, n, 16, ['fgsm', 'pgd']);
    reports.push(r);
    console.log(formatReport(r));
  }
  const bad = reports.filter((r) => !r.tensorsFlat || r.rssGrowth > 0.05);
  const path = await import('path');
  const { writeJsonAtomic } = await import('../src/runs/atomic');
  const out = arg('--out', path.join(__dirname, '..', '..', 'bench', 'results', 'memory.json'));
  (await import('fs')).mkdirSync(path.dirname(out), { recursive: true });
  writeJsonAtomic(out, {
    createdAt: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, node: process.version },
    backend,
    steps,
    // Samples are taken every 25 steps after a full GC, once a warm-up has run.
    reports: reports.map(({ samples, ...rest }) => ({ ...rest, samples: samples.length })),
  });
  console.log(`wrote ${out}`);
  console.log(bad.length === 0 ? 'memory flat: every numTensors constant after warm-up, RSS within 5%' : `NOT FLAT: ${bad.map((r) => r.label).join(', ')}`);
  process.exitCode = bad.length === 0 ? 0 : 1;
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}
