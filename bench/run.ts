// `npm run bench`: ibrar and PyTorch side by side, in one run, on the same machine —
// img/s per step kind and network, medians of ≥ 5 repetitions after warm-up, with the ratio.
// Writes bench/results/train-step.json (and prints a Markdown table).
//
//   npm run bench                      # every row (~15 min on a 2-core CPU)
//   npm run bench -- --quick           # VGG16-BN: forward and CE only
//   npm run bench -- --backend cpu --reps 7 --only small-cnn
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { tf } from '../src/engine/tf';
import { initBackend, type BackendInfo, type BackendName } from '../src/engine/backend';
import { Rng } from '../src/engine/rng';
import { validateConfig } from '../src/config/load';
import { buildModel } from '../src/models/registry';
import { TrainStepper } from '../src/train/step';
import { getAttack } from '../src/attacks/registry';
import { targetFromModel } from '../src/attacks/target';
import { writeJsonAtomic } from '../src/runs/atomic';

type Network = 'small-cnn' | 'vgg16-w0.25' | 'vgg16';
type StepKind = 'forward' | 'ce' | 'ibrar' | 'pgd-at' | 'pgd10-attack' | 'apgd100-attack' | 'autoattack-plus' | 'fmn100-attack' | 'pgd100-baseline';
/** Attacks PyTorch has no implementation of here: timed against ibrar's own PGD of the same gradient count. */
const OWN_BASELINE: Partial<Record<StepKind, StepKind>> = { 'fmn100-attack': 'pgd100-baseline' };

interface Row {
  network: Network;
  step: StepKind;
  batch: number;
}

interface Result extends Row {
  ibrar_median_ms: number;
  ibrar_img_s: number;
  torch_median_ms: number | null;
  torch_img_s: number | null;
  /** ibrar img/s ÷ PyTorch img/s (> 1: ibrar faster). */
  ratio: number | null;
  note?: string;
  /** For OWN_BASELINE rows: ibrar's PGD with the same number of gradient evaluations (ratio = this row ÷ it). */
  baseline?: { step: StepKind; median_ms: number; img_s: number };
}

const NETWORKS: Record<Network, { arch: 'small-cnn' | 'vgg16'; width: number; robust: string[] }> = {
  'small-cnn': { arch: 'small-cnn', width: 1, robust: ['conv2', 'conv3', 'fc1'] },
  'vgg16-w0.25': { arch: 'vgg16', width: 0.25, robust: ['block5', 'fc1', 'fc2'] },
  vgg16: { arch: 'vgg16', width: 1, robust: ['block5', 'fc1', 'fc2'] },
};

function args(): { quick: boolean; backend: BackendName; reps: number; warmup: number; only: string | null; out: string } {
  const a = process.argv.slice(2);
  const get = (k: string) => {
    const i = a.indexOf(k);
    return i >= 0 ? a[i + 1] : undefined;
  };
  return {
    quick: a.includes('--quick'),
    backend: (get('--backend') ?? 'auto') as BackendName,
    reps: Number(get('--reps') ?? 5),
    warmup: Number(get('--warmup') ?? 1),
    only: get('--only') ?? null,
    out: get('--out') ?? path.join(__dirname, '..', '..', 'bench', 'results', 'train-step.json'),
  };
}

function rows(quick: boolean): Row[] {
  const out: Row[] = [];
  for (const network of ['small-cnn', 'vgg16-w0.25', 'vgg16'] as Network[]) {
    const heavy = network === 'vgg16' && quick;
    out.push({ network, step: 'forward', batch: 100 }, { network, step: 'ce', batch: 100 });
    if (heavy) continue;
    out.push({ network, step: 'ibrar', batch: 100 }, { network, step: 'pgd-at', batch: 100 });
    out.push({ network, step: 'pgd10-attack', batch: network === 'vgg16-w0.25' ? 200 : 100 });
    if (network === 'vgg16-w0.25') out.push({ network, step: 'apgd100-attack', batch: 200 });
    // FMN, 100 steps, L∞ (eps 0.03 only decides which rows count): a small batch, as a minimum-norm attack is run.
    if (network === 'vgg16-w0.25') out.push({ network, step: 'fmn100-attack', batch: 50 });
    if (network === 'vgg16-w0.25') out.push({ network, step: 'autoattack-plus', batch: 32 });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function timeIbrar(row: Row, reps: number, warmup: number): Promise<number[]> {
  const net = NETWORKS[row.network];
  const cfg = validateConfig({
    name: 'bench',
    seed: 0,
    data: { dataset: 'synthetic' },
    model: { arch: net.arch, width: net.width },
    train: { method: row.step === 'pgd-at' ? 'pgd-at' : 'ce', lr: 0.01, momentum: 0.9, batchSize: row.batch, attack: { eps: 0.03, steps: 10 } },
    ib: { enabled: row.step === 'ibrar', layers: net.robust, alpha: 0.1, beta: 1.0, yKernel: 'linear' },
  });
  const model = buildModel(cfg.model, 10, [32, 32, 3], new Rng(0).fork('init'));
  const rng = new Rng(1);
  const x = new Float32Array(row.batch * 32 * 32 * 3);
  rng.fillUniform(x, 0, 1);
  const y = new Int32Array(row.batch).map(() => rng.int(10));
  const batch = { x, y, n: row.batch, shape: [32, 32, 3] as [number, number, number] };
  const stepper = new TrainStepper(cfg, model, 10);
  const xt = tf.tensor4d(x, [row.batch, 32, 32, 3]);
  const target = targetFromModel(model);
  // Attacks label each input with the model's own prediction, so every example starts correctly
  // classified and is attacked for all iterations (APGD, like AutoAttack, skips wrong ones).
  const attackRow = row.step === 'pgd10-attack' || row.step === 'apgd100-attack' || row.step === 'autoattack-plus' || row.step in OWN_BASELINE || Object.values(OWN_BASELINE).includes(row.step);
  const yt = attackRow ? tf.tidy(() => tf.cast(tf.argMax(target.logits(xt), 1), 'int32') as tf.Tensor1D) : tf.tensor1d(y, 'int32');
  const once = async (i: number) => {
    switch (row.step) {
      case 'forward':
        tf.tidy(() => target.logits(xt).dataSync());
        return;
      case 'ce':
      case 'ibrar':
      case 'pgd-at':
        await stepper.step(batch, 0, i);
        return;
      case 'pgd10-attack':
      case 'apgd100-attack': {
        const attack = getAttack(row.step === 'pgd10-attack' ? 'pgd' : 'apgd-ce');
        const params = { ...attack.defaults, eps: 0.03, steps: row.step === 'pgd10-attack' ? 10 : 100 };
        const res = await attack.run({ target, rng: new Rng(i) }, xt, yt, params);
        res.xAdv.dispose();
        return;
      }
      case 'fmn100-attack':
      case 'pgd100-baseline': {
        const fmn = row.step === 'fmn100-attack';
        const attack = getAttack(fmn ? 'fmn' : 'pgd');
        const params = fmn ? { norm: 'Linf', steps: 100, eps: 0.03 } : { eps: 0.03, steps: 100 };
        const res = await attack.run({ target, rng: new Rng(i) }, xt, yt, params);
        res.xAdv.dispose();
        return;
      }
      case 'autoattack-plus': {
        // AutoAttack+ (L∞, ε 0.03): APGD-CE and APGD-DLR ×5 restarts, FAB ×5, Square 5000,
        // APGD-T and FAB-T ×9 targets, each on the rows still robust.
        const res = await getAttack('autoattack').run({ target, rng: new Rng(i) }, xt, yt, { version: 'plus', eps: 0.03 });
        res.xAdv.dispose();
        return;
      }
    }
  };
  for (let i = 0; i < warmup; i++) await once(i);
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await once(warmup + i);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  tf.dispose([xt, yt]);
  stepper.dispose();
  model.dispose();
  return times;
}

/**
 * The PyTorch row standing in for an ibrar row: PGD-100 for APGD-CE-100, and for AutoAttack+
 * too, whose first part (APGD-CE, first restart: 100 gradients on every row) it matches in
 * gradient count; the later parts and restarts only see rows still robust, on the untrained
 * bench network few or none. ibrar does at least that work, so the AutoAttack+ ratio is a lower
 * bound on ibrar's per-gradient speed ratio.
 */
function torchStep(step: StepKind): string {
  return step === 'apgd100-attack' || step === 'autoattack-plus' ? 'grad100-attack' : step;
}

function torchResults(rowsToRun: Row[], reps: number, warmup: number): { meta: Record<string, unknown>; byKey: Map<string, { median_ms: number; img_s: number }> } | null {
  const python = fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return null;
  const spec = {
    threads: os.cpus().length,
    reps,
    warmup,
    // PyTorch has no APGD, AutoAttack or FMN here (no torchattacks, no fra31/auto-attack): PGD with
    // the same number of gradient evaluations stands in (see torchStep); FMN is timed against ibrar's own PGD.
    rows: rowsToRun.filter((r) => !(r.step in OWN_BASELINE)).map((r) => ({ ...r, step: torchStep(r.step) })),
  };
  const res = spawnSync(python, [path.join(__dirname, '..', '..', 'bench', 'torch_ref.py')], {
    input: JSON.stringify(spec),
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'inherit'],
    maxBuffer: 1 << 26,
  });
  if (res.status !== 0) {
    process.stderr.write(`bench: PyTorch reference failed (exit ${res.status})\n`);
    return null;
  }
  const out = JSON.parse(res.stdout) as { torch: string; threads: number; blas: string; blas_library?: string; results: Array<Row & { median_ms: number; img_s: number }> };
  const byKey = new Map<string, { median_ms: number; img_s: number }>();
  for (const r of out.results) byKey.set(`${r.network}/${r.step}/${r.batch}`, r);
  return { meta: { version: out.torch, threads: out.threads, blas: out.blas, blasLibrary: out.blas_library }, byKey };
}

function table(results: Result[], backend: BackendInfo): string {
  const lines = [
    `| network | step | batch | ibrar (${backend.active}) img/s | PyTorch img/s | ratio |`,
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...results.map(
      (r) =>
        `| ${r.network} | ${r.step} | ${r.batch} | ${r.ibrar_img_s.toFixed(1)} | ${r.torch_img_s?.toFixed(1) ?? (r.baseline ? `– (ibrar ${r.baseline.step}: ${r.baseline.img_s.toFixed(1)})` : '–')} | ${r.ratio ? r.ratio.toFixed(2) + '×' : '–'} |`,
    ),
  ];
  return lines.join('\n');
}

async function main(): Promise<void> {
  const opt = args();
  const backend = await initBackend(opt.backend);
  const todo = rows(opt.quick).filter((r) => !opt.only || r.network === opt.only || r.step === opt.only);
  process.stderr.write(`bench: ${todo.length} rows on ${backend.active}, ${opt.reps} reps after ${opt.warmup} warm-up\n`);
  const torch = torchResults(todo, opt.reps, opt.warmup);
  if (!torch) process.stderr.write('bench: PyTorch not available (apt-get install python3-torch libopenblas-dev); ibrar rows only\n');
  const results: Result[] = [];
  for (const row of todo) {
    const times = await timeIbrar(row, opt.reps, opt.warmup);
    const ms = median(times);
    const ref = torch?.byKey.get(`${row.network}/${torchStep(row.step)}/${row.batch}`) ?? null;
    const img = row.batch / (ms / 1000);
    const baseStep = OWN_BASELINE[row.step];
    const baseMs = baseStep ? median(await timeIbrar({ ...row, step: baseStep }, opt.reps, opt.warmup)) : null;
    const baseline = baseStep && baseMs !== null ? { step: baseStep, median_ms: baseMs, img_s: row.batch / (baseMs / 1000) } : undefined;
    results.push({
      ...row,
      ibrar_median_ms: ms,
      ibrar_img_s: img,
      torch_median_ms: ref?.median_ms ?? null,
      torch_img_s: ref?.img_s ?? null,
      ratio: ref ? img / ref.img_s : baseline ? img / baseline.img_s : null,
      ...(row.step === 'apgd100-attack' ? { note: 'PyTorch column: PGD with 100 steps (same gradient count); torchattacks is not installed' } : {}),
      ...(baseline ? { baseline, note: `no PyTorch FMN here: ratio is to ibrar's own ${baseline.step} (same gradient count), ${baseline.img_s.toFixed(1)} img/s` } : {}),
      ...(row.step === 'autoattack-plus'
        ? { note: "PyTorch column: PGD with 100 steps (the gradient count of AutoAttack+'s first APGD-CE restart; later parts see only rows still robust); fra31/auto-attack is not installed" }
        : {}),
    });
    process.stderr.write(`  ${row.network} ${row.step}: ${img.toFixed(1)} img/s` + (ref ? ` (PyTorch ${ref.img_s.toFixed(1)})` : '') + '\n');
  }
  const report = {
    createdAt: new Date().toISOString(),
    machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, loadavg: os.loadavg() },
    backend,
    pytorch: torch?.meta ?? null,
    method: `median of ${opt.reps} repetitions after ${opt.warmup} warm-up; img/s = batch / median step time; same network, batch and step kind in both frameworks; PyTorch threads = cores`,
    results,
  };
  fs.mkdirSync(path.dirname(opt.out), { recursive: true });
  writeJsonAtomic(opt.out, report);
  process.stdout.write(table(results, backend) + `\n\nwrote ${opt.out}\n`);
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
  process.exit(1);
});
