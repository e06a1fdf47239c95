// Micro-benchmark: GFLOP/s of the heavy training kernels on the wasm backend, as registered
// by ibrar without the addon (tfjs-backend-wasm plus ibrar's wasm patches) versus the native
// addon's implementations, for CIFAR-VGG-like shapes.
//
//   node dist/bench/native-kernels.js [--batch 100] [--reps 5] [--warmup 1] [--wasm-reps 3]
//        [--skip-wasm] [--ops conv,bpi,bpf,mm,pool,sum] [--threads N]
//
// All variants of one case run round-robin on the same tensors (variant A, B, C, A, B, C, …)
// so that load from other processes hits them alike. Each cell is the median over --reps
// timed runs after --warmup untimed ones, and the best run in brackets. The machine is
// shared: compare columns of one run rather than absolute numbers.
import { tf } from '../src/engine/tf';
import { initBackend } from '../src/engine/backend';
import {
  registerNativeKernels,
  setNativeConvEngine,
  setNativeMatMulEngine,
  setNativeThreads,
  unregisterNativeKernels,
  nativeKernelStats,
  resetNativeKernelStats,
  type ConvEngine,
  type MatMulEngine,
} from '../src/engine/native';

interface Options {
  batch: number;
  reps: number;
  warmup: number;
  wasmReps: number;
  skipWasm: boolean;
  ops: Set<string>;
  threads?: number;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { batch: 100, reps: 5, warmup: 1, wasmReps: 3, skipWasm: false, ops: new Set(['conv', 'bpi', 'bpf', 'mm', 'pool', 'sum']) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--batch') o.batch = Number(next());
    else if (a === '--reps') o.reps = Number(next());
    else if (a === '--warmup') o.warmup = Number(next());
    else if (a === '--wasm-reps') o.wasmReps = Number(next());
    else if (a === '--skip-wasm') o.skipWasm = true;
    else if (a === '--ops') o.ops = new Set(next().split(','));
    else if (a === '--threads') o.threads = Number(next());
    else throw new Error(`unknown option ${a}`);
  }
  return o;
}

interface Case {
  kind: 'conv' | 'matmul' | 'pool' | 'sum';
  op: string;
  label: string;
  flops: number;
  /** 0 for memory-bound ops: their cells show milliseconds instead of GFLOP/s. */
  /** Makes inputs; `run` executes the kernel once and frees its output. */
  setup: () => { run: () => void; dispose: () => void };
}

function runKernel(name: string, inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>): void {
  const out = tf.engine().runKernel(name, inputs as unknown as tf.NamedTensorMap, attrs as tf.NamedAttrMap) as tf.Tensor;
  out.dispose();
}

// VGG-style 3x3 'same' convolutions on CIFAR: (H = W, C_in, C_out).
const CONVS: Array<[number, number, number]> = [
  [32, 3, 64],
  [32, 64, 64],
  [16, 128, 128],
  [8, 256, 256],
  [4, 512, 512],
  [2, 512, 512],
];

function convCases(batch: number, ops: Set<string>): Case[] {
  const cases: Case[] = [];
  for (const [hw, ci, co] of CONVS) {
    const flops = 2 * batch * hw * hw * co * 9 * ci;
    const label = `${hw}x${hw}x${ci}->${co}`;
    const attrs = { strides: [1, 1], pad: 'same', dataFormat: 'NHWC', dilations: [1, 1], dimRoundingMode: undefined };
    const make = () => ({
      x: tf.randomNormal([batch, hw, hw, ci]),
      w: tf.randomNormal([3, 3, ci, co]),
      dy: tf.randomNormal([batch, hw, hw, co]),
    });
    const free = (t: Record<string, tf.Tensor>) => Object.values(t).forEach((v) => v.dispose());
    const add = (key: string, op: string, run: (t: ReturnType<typeof make>) => void) => {
      if (!ops.has(key)) return;
      cases.push({ kind: 'conv', op, label, flops, setup: () => {
        const t = make();
        return { run: () => run(t), dispose: () => free(t) };
      } });
    };
    add('conv', 'conv fwd', (t) => runKernel(tf.Conv2D, { x: t.x, filter: t.w }, attrs));
    add('bpi', 'conv bwd-input', (t) => runKernel(tf.Conv2DBackpropInput, { dy: t.dy, filter: t.w }, { ...attrs, inputShape: t.x.shape }));
    add('bpf', 'conv bwd-filter', (t) => runKernel(tf.Conv2DBackpropFilter, { x: t.x, dy: t.dy }, { ...attrs, filterShape: t.w.shape }));
  }
  return cases;
}

// Classifier layers: forward X·W, backward dY·Wᵀ (input grad) and Xᵀ·dY (weight grad).
function matmulCases(batch: number, ops: Set<string>): Case[] {
  if (!ops.has('mm')) return [];
  const cases: Case[] = [];
  for (const [k, n] of [[512, 4096], [4096, 4096], [4096, 10]] as Array<[number, number]>) {
    const flops = 2 * batch * k * n;
    const variants: Array<[string, number[], number[], boolean, boolean]> = [
      ['fwd X.W', [1, batch, k], [1, k, n], false, false],
      ['bwd dY.Wt', [1, batch, n], [1, k, n], false, true],
      ['bwd Xt.dY', [1, batch, k], [1, batch, n], true, false],
    ];
    for (const [name, as, bs, ta, tb] of variants) {
      cases.push({ kind: 'matmul', op: `matmul ${name}`, label: `FC ${k}->${n}`, flops, setup: () => {
        const a = tf.randomNormal(as);
        const b = tf.randomNormal(bs);
        return {
          run: () => runKernel(tf.BatchMatMul, { a, b }, { transposeA: ta, transposeB: tb }),
          dispose: () => { a.dispose(); b.dispose(); },
        };
      } });
    }
  }
  return cases;
}

// Gradient of the 2x2 stride-2 max pooling after each VGG block (milliseconds).
function poolCases(batch: number, ops: Set<string>): Case[] {
  if (!ops.has('pool')) return [];
  const cases: Case[] = [];
  for (const [hw, c] of [[32, 64], [16, 128], [8, 256], [4, 512], [2, 512]] as Array<[number, number]>) {
    const label = `${hw}x${hw}x${c} 2x2/2`;
    const attrs = { filterSize: [2, 2], strides: [2, 2], pad: 'valid', dimRoundingMode: undefined };
    const make = () => {
      const x = tf.randomNormal([batch, hw, hw, c]);
      const y = tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid');
      return { x, y, dy: tf.randomNormal(y.shape) };
    };
    const free = (t: Record<string, tf.Tensor>) => Object.values(t).forEach((v) => v.dispose());
    cases.push({ kind: 'pool', op: 'maxPool bwd (ms)', label, flops: 0, setup: () => {
      const t = make();
      return { run: () => runKernel(tf.MaxPoolGrad, { dy: t.dy, input: t.x, output: t.y }, attrs), dispose: () => free(t) };
    } });
  }
  return cases;
}

// Batch-norm statistics: sum over N, H, W of each VGG block's activations (milliseconds).
function sumCases(batch: number, ops: Set<string>): Case[] {
  if (!ops.has('sum')) return [];
  return ([[32, 64], [16, 128], [8, 256], [4, 512]] as Array<[number, number]>).map(([hw, c]) => ({
    kind: 'sum' as const,
    op: 'sum over N,H,W (ms)',
    label: `${hw}x${hw}x${c}`,
    flops: 0,
    setup: () => {
      const x = tf.randomNormal([batch, hw, hw, c]);
      return { run: () => runKernel(tf.Sum, { x }, { axis: [0, 1, 2], keepDims: false }), dispose: () => x.dispose() };
    },
  }));
}

interface Variant {
  name: string;
  reps: number;
  /** Puts the kernels of this variant in place. */
  apply: () => void;
}

type Result = { median: number; best: number } | string;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** GFLOP/s per variant (median and best over reps), or why it could not run. */
function measure(c: Case, variants: Variant[], warmup: number): Result[] {
  const { run, dispose } = c.setup();
  const times: number[][] = variants.map(() => []);
  const failed: Array<string | null> = variants.map(() => null);
  const attempt = (v: number, timed: boolean) => {
    if (failed[v]) return;
    variants[v].apply();
    try {
      const t0 = performance.now();
      run();
      if (timed) times[v].push(performance.now() - t0);
    } catch (err) {
      failed[v] = `n/a (${(err as Error).message.split('\n')[0].slice(0, 50)})`;
    }
  };
  try {
    variants.forEach((_, v) => {
      for (let i = 0; i < warmup; i++) attempt(v, false);
    });
    const rounds = Math.max(...variants.map((v) => v.reps));
    for (let r = 0; r < rounds; r++) variants.forEach((v, i) => r < v.reps && attempt(i, true));
  } finally {
    dispose();
  }
  return variants.map((_, v) => {
    if (failed[v]) return failed[v] as string;
    if (c.flops === 0) return { median: median(times[v]), best: Math.min(...times[v]) };
    return { median: c.flops / (median(times[v]) * 1e6), best: c.flops / (Math.min(...times[v]) * 1e6) };
  });
}

function fmt(r: Result | undefined): string {
  if (r === undefined) return '-';
  return typeof r === 'string' ? r : `${r.median.toFixed(1)} (${r.best.toFixed(1)})`;
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  await initBackend('wasm');
  const reg = registerNativeKernels();
  if (!reg.loaded) console.log(`native kernels not available: ${reg.reason}; measuring wasm only`);
  else {
    if (o.threads) setNativeThreads(o.threads);
    console.log(`native: ${reg.runtime}${o.threads ? ` (set to ${o.threads} threads)` : ''}`);
  }
  const cases = [...convCases(o.batch, o.ops), ...matmulCases(o.batch, o.ops), ...poolCases(o.batch, o.ops), ...sumCases(o.batch, o.ops)];

  const wasmVariant: Variant = { name: 'wasm', reps: o.wasmReps, apply: unregisterNativeKernels };
  const nativeVariant = (name: string, conv: ConvEngine, matmul: MatMulEngine): Variant => ({
    name,
    reps: o.reps,
    apply: () => {
      registerNativeKernels();
      setNativeConvEngine(conv);
      setNativeMatMulEngine(matmul);
    },
  });
  const convVariants = [
    nativeVariant('oneDNN conv', 'dnnl', 'auto'),
    nativeVariant('im2col+OpenBLAS', 'gemm-openblas', 'auto'),
    nativeVariant('im2col+oneDNN sgemm', 'gemm-dnnl', 'auto'),
    nativeVariant('oneDNN conv, blocked layouts', 'dnnl-blocked', 'auto'),
    nativeVariant('auto', 'auto', 'auto'),
  ];
  const matmulVariants = [
    nativeVariant('oneDNN matmul', 'auto', 'dnnl'),
    nativeVariant('OpenBLAS sgemm', 'auto', 'openblas'),
    nativeVariant('oneDNN sgemm', 'auto', 'dnnl-gemm'),
    nativeVariant('auto', 'auto', 'auto'),
  ];

  resetNativeKernelStats();
  const rows: string[] = [];
  for (const c of cases) {
    const native = c.kind === 'conv' ? convVariants : c.kind === 'matmul' ? matmulVariants : [nativeVariant('auto', 'auto', 'auto')];
    const variants = [...(o.skipWasm ? [] : [wasmVariant]), ...(reg.loaded ? native : [])];
    const res = measure(c, variants, o.warmup);
    const byName = new Map(variants.map((v, i) => [v.name, res[i]] as const));
    const wasm = byName.get('wasm');
    const auto = byName.get('auto');
    const ratio = (w: number, a: number) => (c.flops === 0 ? w / a : a / w);
    const speedup = wasm && auto && typeof wasm !== 'string' && typeof auto !== 'string' ? `${ratio(wasm.median, auto.median).toFixed(1)}x` : '-';
    const cells =
      c.kind === 'pool' || c.kind === 'sum' ? ['-', '-', '-', '-', fmt(auto)]
      : c.kind === 'matmul' ? [...native.slice(0, 3).map((v) => fmt(byName.get(v.name))), '-', fmt(auto)]
      : native.map((v) => fmt(byName.get(v.name)));
    const row = `| ${c.op} | ${c.label} | ${(c.flops / 1e9).toFixed(2)} | ${fmt(wasm)} | ${cells.join(' | ')} | ${speedup} |`;
    rows.push(row);
    process.stderr.write(`${row}\n`);
  }
  registerNativeKernels();
  setNativeConvEngine('auto');
  setNativeMatMulEngine('auto');

  console.log(`\nbatch ${o.batch}; GFLOP/s, median of ${o.reps} runs (wasm: ${o.wasmReps}) after ${o.warmup} warm-up, best run in brackets`);
  console.log('native columns: conv A = oneDNN convolution on NHWC, B = im2col + OpenBLAS sgemm, C = im2col + oneDNN sgemm,');
  console.log('                D = oneDNN convolution on its blocked layouts (activations reordered in and out);');
  console.log('                matmul A = oneDNN matmul primitive, B = OpenBLAS sgemm, C = oneDNN sgemm; auto = what ibrar uses');
  console.log('maxPool-gradient and sum rows: milliseconds (lower is better); auto / wasm is always the native speed-up');
  console.log('| op | shape | GFLOP | wasm | native A | native B | native C | native D | native auto | auto / wasm |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  rows.forEach((r) => console.log(r));
  const fallbacks = Object.entries(nativeKernelStats()).filter(([, s]) => s.fallback > 0);
  if (fallbacks.length) console.log('fallbacks:', JSON.stringify(Object.fromEntries(fallbacks)));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
