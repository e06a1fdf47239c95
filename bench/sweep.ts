// `npm run bench`, sweep row: how to split the cores among sweep workers. Total img/s of CE
// training (VGG16 w0.25, batch 100) for every split jobs × threads = cores (on 2 cores: 2 workers
// × 1 native thread, and 1 worker × 2 threads), each worker a separate process with
// IBRAR_NATIVE_THREADS set, as the local pool (src/jobs/pool.ts) runs sweep cells. Start-up and
// warm-up are excluded: every worker warms up, then all start their timed steps together.
// Writes bench/results/sweep.json and says whether the pool's default (DEFAULT_THREADS_PER_WORKER)
// is the fastest split here.
//
//   node dist/bench/sweep.js [--steps 200] [--batch 100] [--reps 2] [--out FILE]
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawn } from 'child_process';
import { initBackend } from '../src/engine/backend';
import { applyNativeThreads, nativeThreads } from '../src/engine/native/threads';
import { Rng } from '../src/engine/rng';
import { validateConfig } from '../src/config/load';
import { buildModel } from '../src/models/registry';
import { TrainStepper } from '../src/train/step';
import { writeJsonAtomic } from '../src/runs/atomic';
import { availableCores, DEFAULT_THREADS_PER_WORKER } from '../src/jobs/pool';

interface Opts {
  steps: number;
  batch: number;
  reps: number;
  warmup: number;
  out: string;
}

function opts(argv: string[]): Opts & { worker: boolean; id: number; barrier: string } {
  const get = (k: string) => {
    const i = argv.indexOf(k);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return {
    steps: Number(get('--steps') ?? 200),
    batch: Number(get('--batch') ?? 100),
    reps: Number(get('--reps') ?? 2),
    warmup: Number(get('--warmup') ?? 3),
    out: get('--out') ?? path.join(__dirname, '..', '..', 'bench', 'results', 'sweep.json'),
    worker: argv.includes('--worker'),
    id: Number(get('--id') ?? 0),
    barrier: get('--barrier') ?? '',
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One worker: warm up, say ready, wait for go, time `steps` CE steps, report. */
async function worker(o: ReturnType<typeof opts>): Promise<void> {
  const backend = await initBackend('auto');
  applyNativeThreads(Number(process.env.IBRAR_NATIVE_THREADS) || undefined);
  const cfg = validateConfig({
    name: 'bench-sweep',
    seed: o.id,
    data: { dataset: 'synthetic' },
    model: { arch: 'vgg16', width: 0.25 },
    train: { method: 'ce', lr: 0.01, momentum: 0.9, batchSize: o.batch },
  });
  const model = buildModel(cfg.model, 10, [32, 32, 3], new Rng(o.id).fork('init'));
  const rng = new Rng(100 + o.id);
  const x = new Float32Array(o.batch * 32 * 32 * 3);
  rng.fillUniform(x, 0, 1);
  const y = new Int32Array(o.batch).map(() => rng.int(10));
  const batch = { x, y, n: o.batch, shape: [32, 32, 3] as [number, number, number] };
  const stepper = new TrainStepper(cfg, model, 10);
  for (let i = 0; i < o.warmup; i++) await stepper.step(batch, 0, i);
  fs.writeFileSync(path.join(o.barrier, `ready-${o.id}`), '');
  while (!fs.existsSync(path.join(o.barrier, 'go'))) await sleep(2);
  const start = Date.now();
  for (let i = 0; i < o.steps; i++) await stepper.step(batch, 0, o.warmup + i);
  const end = Date.now();
  fs.writeFileSync(path.join(o.barrier, `done-${o.id}.json`), JSON.stringify({ start, end, threads: nativeThreads(), backend: backend.active }));
  stepper.dispose();
  model.dispose();
}

interface Split {
  jobs: number;
  threads: number;
}

/** Every split of `cores` into jobs × threads (all divisors). */
function splits(cores: number): Split[] {
  const out: Split[] = [];
  for (let jobs = cores; jobs >= 1; jobs--) if (cores % jobs === 0) out.push({ jobs, threads: cores / jobs });
  return out;
}

/** Total img/s of `split`: `steps` steps in all, shared among its workers, from go to the last one done. */
async function measure(split: Split, o: Opts): Promise<{ img_s: number; seconds: number; threadsSeen: (number | null)[] }> {
  const barrier = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-bench-sweep-'));
  const perWorker = Math.max(1, Math.round(o.steps / split.jobs));
  const children = Array.from({ length: split.jobs }, (_, id) =>
    spawn(process.execPath, [__filename, '--worker', '--id', String(id), '--steps', String(perWorker), '--batch', String(o.batch), '--warmup', String(o.warmup), '--barrier', barrier], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, IBRAR_NATIVE_THREADS: String(split.threads) },
    }),
  );
  const exits = children.map((c) => new Promise<number>((r) => c.on('exit', (code) => r(code ?? 1))));
  try {
    while (fs.readdirSync(barrier).filter((f) => f.startsWith('ready-')).length < split.jobs) {
      if (children.some((c) => c.exitCode !== null)) throw new Error('a bench worker exited before it was ready');
      await sleep(10);
    }
    const go = Date.now();
    fs.writeFileSync(path.join(barrier, 'go'), '');
    const codes = await Promise.all(exits);
    if (codes.some((c) => c !== 0)) throw new Error(`bench workers exited with ${codes.join(', ')}`);
    const done = Array.from({ length: split.jobs }, (_, id) => JSON.parse(fs.readFileSync(path.join(barrier, `done-${id}.json`), 'utf8')) as { end: number; threads: number | null });
    const seconds = (Math.max(...done.map((d) => d.end)) - go) / 1000;
    return { img_s: (perWorker * split.jobs * o.batch) / seconds, seconds, threadsSeen: done.map((d) => d.threads) };
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(barrier, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const o = opts(process.argv.slice(2));
  if (o.worker) return worker(o);
  const cores = availableCores();
  const all = splits(cores);
  process.stderr.write(`bench sweep: VGG16 w0.25 CE, batch ${o.batch}, ${o.steps} steps per measurement, splits of ${cores} cores: ${all.map((s) => `${s.jobs}×${s.threads}`).join(', ')}; ${o.reps} rep(s), order reversed every other rep\n`);
  const samples = new Map<string, number[]>();
  for (let rep = 0; rep < o.reps; rep++) {
    for (const s of rep % 2 ? [...all].reverse() : all) {
      const r = await measure(s, o);
      const key = `${s.jobs}x${s.threads}`;
      samples.set(key, [...(samples.get(key) ?? []), r.img_s]);
      process.stderr.write(`  ${s.jobs} worker(s) × ${s.threads} thread(s): ${r.img_s.toFixed(0)} img/s in total (${r.seconds.toFixed(1)} s; native threads seen ${r.threadsSeen.join(',')})\n`);
    }
  }
  const results = all.map((s) => {
    const v = samples.get(`${s.jobs}x${s.threads}`)!;
    return { jobs: s.jobs, threads: s.threads, img_s: v.reduce((a, b) => a + b, 0) / v.length, samples: v };
  });
  const best = results.reduce((a, b) => (b.img_s > a.img_s ? b : a));
  const agrees = best.threads === DEFAULT_THREADS_PER_WORKER;
  const report = {
    createdAt: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavg: os.loadavg() },
    method: `total img/s = images of all workers' timed steps / seconds from a common start to the last worker's end; ${o.steps} CE steps of VGG16 w0.25 (batch ${o.batch}) per measurement, shared among the workers, after ${o.warmup} warm-up steps each; mean of ${o.reps} rep(s)`,
    results,
    fastest: { jobs: best.jobs, threads: best.threads },
    poolDefaultThreadsPerWorker: DEFAULT_THREADS_PER_WORKER,
    poolDefaultIsFastest: agrees,
  };
  fs.mkdirSync(path.dirname(o.out), { recursive: true });
  writeJsonAtomic(o.out, report);
  const lines = ['| workers × native threads | total img/s |', '| --- | ---: |', ...results.map((r) => `| ${r.jobs} × ${r.threads} | ${r.img_s.toFixed(0)} |`)];
  process.stdout.write(
    `${lines.join('\n')}\n\nfastest: ${best.jobs} × ${best.threads}; the pool's default is ${DEFAULT_THREADS_PER_WORKER} thread(s) per worker` +
      (agrees ? ' (agrees)' : ` — DISAGREES: set DEFAULT_THREADS_PER_WORKER = ${best.threads} in src/jobs/pool.ts`) +
      `\nwrote ${o.out}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`bench sweep failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
