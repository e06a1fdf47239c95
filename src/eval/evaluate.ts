// `ibrar eval`: run dir → model → attacks → metrics. Streams the test set in batches, keeps
// per-example predictions in a state file so an interrupted evaluation continues where it
// stopped, and writes eval/<timestamp>.{json,csv,md}.
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { initBackend } from '../engine/backend';
import { loadConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { loadDataset, testBatches, toTensors, type Split } from '../data';
import { sliceSplit } from '../data/subset';
import { buildModel } from '../models/registry';
import type { Model } from '../models/types';
import { getAttack, parseAttackList } from '../attacks/registry';
import { targetFromModel } from '../attacks/target';
import { predict } from '../attacks/common';
import type { AttackContext } from '../attacks/types';
import { loadCheckpoint } from '../train/checkpoint';
import { constantMaskHook, makeAdaptiveLoss } from '../train/ib-hooks';
import { runLayout } from '../runs/run-dir';
import { removeStaleTempFiles, writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { configHash } from '../runs/config-hash';
import { confusionTendency, confusionMarkdown } from './confusion';
import type { AttackSummary, EvalReport } from './report-types';

export interface EvalRequest {
  runDir: string;
  /** `last`, `best`, or a path to a checkpoint sidecar (`…/<tag>.json`). */
  checkpoint: string;
  attacks: string[];
  eps: number;
  steps?: number;
  n?: number;
  batchSize: number;
  seed: number;
  /** Per-attack parameter overrides, e.g. {cw: {c: 1}}. */
  params?: Record<string, Record<string, unknown>>;
}

export interface EvalProgress {
  onStart?(info: { n: number; attacks: string[]; resumedBatches: number; maskApplied: boolean }): void;
  onBatch?(info: { done: number; total: number; perAttack: Record<string, { correct: number; seen: number; seconds: number }> }): void;
  onDone?(report: EvalReport, files: string[]): void;
  onInterrupted?(info: { runDir: string; done: number; total: number }): void;
}

interface EvalState {
  key: string;
  n: number;
  batchSize: number;
  doneBatches: number;
  clean: number[];
  preds: Record<string, number[]>;
  seconds: Record<string, number>;
  extraSums: Record<string, Record<string, number>>;
  /**
   * Set (and saved) once every batch is done, before the report files are written: a process
   * killed while writing them rewrites the same files on resume instead of adding a second
   * report under a new timestamp.
   */
  report?: { createdAt: string; base: string };
}

/** ε as papers write it: k/255 when it is one, else the simplest fraction up to /1000. */
export function formatEps(eps: number): string {
  const isInt = (v: number) => Math.abs(v - Math.round(v)) < 1e-9;
  if (eps > 0 && isInt(eps * 255)) return `${Math.round(eps * 255)}/255`;
  for (let d = 1; d <= 1000; d++) {
    if (isInt(eps * d)) return d === 1 ? String(Math.round(eps)) : `${Math.round(eps * d)}/${d}`;
  }
  return String(eps);
}

/** Parameters for one attack: its defaults, then --eps/--steps where the attack has them, then overrides. */
export function attackParams(name: string, req: Pick<EvalRequest, 'eps' | 'steps' | 'params'>): Record<string, unknown> {
  const attack = getAttack(name);
  const params: Record<string, unknown> = { ...(attack.defaults as Record<string, unknown>) };
  if ('eps' in params) params.eps = req.eps;
  if (req.steps !== undefined && 'steps' in params) params.steps = req.steps;
  // The authors' PGD step rule follows ε and steps unless the user fixed α.
  if ('alpha' in params && !(req.params?.[name] && 'alpha' in req.params[name])) delete params.alpha;
  Object.assign(params, req.params?.[name] ?? {});
  return params;
}

function resolveCheckpoint(runDir: string, spec: string): { dir: string; tag: string } {
  if (spec === 'last' || spec === 'best') return { dir: runLayout(runDir).checkpoints, tag: spec };
  const p = path.resolve(spec);
  if (!p.endsWith('.json')) throw new UserError(`expected last, best or a checkpoint sidecar path (…/<tag>.json), found '${spec}'`, undefined, '--checkpoint');
  return { dir: path.dirname(p), tag: path.basename(p, '.json') };
}

function stateKey(req: EvalRequest, ckptSha: string, attacks: string[], params: Record<string, unknown>): string {
  return createHash('sha256')
    .update(JSON.stringify({ ckptSha, attacks, params, n: req.n, batchSize: req.batchSize, seed: req.seed }))
    .digest('hex')
    .slice(0, 16);
}

export async function evaluateRun(req: EvalRequest, opts: { progress?: EvalProgress; shouldStop?: () => boolean } = {}): Promise<{ report: EvalReport | null; files: string[] }> {
  // Arguments first: a typo in an attack name should not wait for a dataset to load.
  const attacks = parseAttackList(req.attacks.join(','));
  const params: Record<string, Record<string, unknown>> = {};
  for (const a of attacks) params[a] = attackParams(a, req);
  if (!(req.eps >= 0 && req.eps <= 1)) throw new UserError(`eps must be in [0, 1], found ${req.eps}`, undefined, '--eps');
  const layout = runLayout(req.runDir);
  if (!fs.existsSync(layout.config)) throw new UserError('not a run directory (config.yaml missing)', req.runDir);
  const cfg: ExperimentConfig = loadConfig(layout.config);

  await initBackend(cfg.backend);
  const dataset = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, dataset.numClasses, dataset.shape, new Rng(cfg.seed).fork('init'));
  try {
    const { dir, tag } = resolveCheckpoint(req.runDir, req.checkpoint);
    const { sidecar } = loadCheckpoint(dir, tag, model.params);
    const maskApplied = Boolean(sidecar.mask && cfg.ib.mask.applyAtEval);
    const hook = maskApplied ? constantMaskHook(Float32Array.from(sidecar.mask!)) : undefined;
    const n = Math.min(req.n ?? dataset.test.n, dataset.test.n);
    const split: Split = sliceSplit(dataset.test, 0, n);
    const numBatches = Math.ceil(n / req.batchSize);

    fs.mkdirSync(layout.evalDir, { recursive: true });
    // Temp files of an evaluation killed mid-write (their writer's pid is gone).
    removeStaleTempFiles(layout.evalDir);
    const key = stateKey(req, sidecar.files.weights.sha256, attacks, params);
    const statePath = path.join(layout.evalDir, `.state-${key}.json`);
    let state: EvalState = { key, n, batchSize: req.batchSize, doneBatches: 0, clean: [], preds: {}, seconds: {}, extraSums: {} };
    if (fs.existsSync(statePath)) {
      try {
        const saved = JSON.parse(fs.readFileSync(statePath, 'utf8')) as EvalState;
        if (saved.key === key && saved.n === n) state = saved;
      } catch {
        // A corrupt state file only costs a restart of the evaluation.
      }
    }
    for (const a of attacks) {
      state.preds[a] ??= [];
      state.seconds[a] ??= 0;
      state.extraSums[a] ??= {};
    }
    opts.progress?.onStart?.({ n, attacks, resumedBatches: state.doneBatches, maskApplied });

    const target = targetFromModel(model, { channelMask: hook });
    const adaptive = attacks.includes('pgd-ad') ? makeAdaptiveLoss(cfg, model) : undefined;
    let b = 0;
    for (const batch of testBatches(split, req.batchSize)) {
      if (b++ < state.doneBatches) continue;
      const { x, y, yOneHot } = toTensors(batch, dataset.numClasses);
      try {
        const clean = await predict(target, x);
        state.clean.push(...clean);
        for (const a of attacks) {
          const ctx: AttackContext = { target, rng: new Rng(req.seed).fork(`${a}-${b - 1}`), extraLoss: adaptive };
          const t0 = process.hrtime.bigint();
          const res = await getAttack(a).run(ctx, x, y, params[a] as never);
          state.seconds[a] += Number(process.hrtime.bigint() - t0) / 1e9;
          const pred = await predict(target, res.xAdv).finally(() => res.xAdv.dispose());
          state.preds[a].push(...pred);
          for (const [k, v] of Object.entries(res.extra ?? {})) state.extraSums[a][k] = (state.extraSums[a][k] ?? 0) + v * batch.n;
          if (res.queries !== undefined) state.extraSums[a].queries = (state.extraSums[a].queries ?? 0) + res.queries;
        }
      } finally {
        // All three: the unused one-hot matrix leaked one tensor per batch before.
        tf.dispose([x, y, yOneHot]);
      }
      state.doneBatches = b;
      writeJsonAtomic(statePath, state);
      const seen = state.clean.length;
      const perAttack: Record<string, { correct: number; seen: number; seconds: number }> = {};
      for (const a of attacks) perAttack[a] = { correct: countCorrect(state.preds[a], split.labels), seen, seconds: state.seconds[a] };
      opts.progress?.onBatch?.({ done: seen, total: n, perAttack });
      // Let signal handlers run: attacks are synchronous compute between awaits of resolved promises.
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (opts.shouldStop?.() && b < numBatches) {
        opts.progress?.onInterrupted?.({ runDir: req.runDir, done: seen, total: n });
        return { report: null, files: [] };
      }
    }

    if (!state.report) {
      const createdAt = new Date().toISOString();
      state.report = { createdAt, base: path.basename(freeReportBase(layout.evalDir, createdAt)) };
      writeJsonAtomic(statePath, state);
    }
    const report = buildReport(req, cfg, dataset.classNames, split, state, attacks, params, {
      tag,
      epoch: sidecar.epoch,
      file: path.join(dir, `${tag}.json`),
      maskApplied,
    });
    const files = writeReport(path.join(layout.evalDir, state.report.base), report);
    fs.rmSync(statePath, { force: true });
    opts.progress?.onDone?.(report, files);
    return { report, files };
  } finally {
    model.dispose();
  }
}

function countCorrect(preds: ArrayLike<number>, labels: Int32Array): number {
  let c = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === labels[i]) c++;
  return c;
}

function buildReport(
  req: EvalRequest,
  cfg: ExperimentConfig,
  classNames: string[],
  split: Split,
  state: EvalState,
  attacks: string[],
  params: Record<string, Record<string, unknown>>,
  ckpt: { tag: string; epoch: number; file: string; maskApplied: boolean },
): EvalReport {
  const n = split.n;
  const labels = split.labels;
  const cleanCorrect = countCorrect(state.clean, labels);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    if (state.clean[i] !== labels[i]) continue;
    if (attacks.every((a) => state.preds[a][i] === labels[i])) worst++;
  }
  const summaries: AttackSummary[] = attacks.map((a) => {
    let flipped = 0;
    for (let i = 0; i < n; i++) if (state.clean[i] === labels[i] && state.preds[a][i] !== labels[i]) flipped++;
    const extra: Record<string, number> = {};
    for (const [k, v] of Object.entries(state.extraSums[a])) extra[k] = k === 'queries' ? v : v / n;
    return {
      attack: a,
      params: params[a],
      robust_acc: countCorrect(state.preds[a], labels) / n,
      success_rate: cleanCorrect ? flipped / cleanCorrect : 0,
      seconds: state.seconds[a],
      images_per_sec: state.seconds[a] > 0 ? n / state.seconds[a] : 0,
      extra,
    };
  });
  const aa = summaries.find((s) => s.attack === 'autoattack');
  return {
    format: 'ibrar-eval/1',
    runDir: req.runDir,
    checkpoint: { tag: ckpt.tag, epoch: ckpt.epoch, file: ckpt.file },
    configHash: configHash(cfg),
    architecture: cfg.model.arch + (cfg.model.width !== 1 ? `-w${cfg.model.width}` : ''),
    dataset: cfg.data.dataset,
    n,
    eps: req.eps,
    eps_str: formatEps(req.eps),
    seed: req.seed,
    mask_applied: ckpt.maskApplied,
    clean_acc: cleanCorrect / n,
    attacks: summaries,
    worst_case_acc: worst / n,
    confusion: attacks.map((a) => confusionTendency(a, labels, state.preds[a], classNames)),
    robustbench: {
      clean_acc: cleanCorrect / n,
      ...(aa ? { autoattack_acc: aa.robust_acc } : {}),
      eps: formatEps(req.eps),
      architecture: cfg.model.arch,
      dataset: cfg.data.dataset,
      threat_model: 'Linf',
    },
    createdAt: state.report?.createdAt ?? new Date().toISOString(),
  };
}

/** `<evalDir>/<yyyymmdd-hhmmss>[-k]`, the first such name without a report yet. */
function freeReportBase(evalDir: string, createdAt: string): string {
  const stamp = createdAt.replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let base = path.join(evalDir, stamp);
  for (let k = 2; fs.existsSync(base + '.json'); k++) base = path.join(evalDir, `${stamp}-${k}`);
  return base;
}

/** Writes `<base>.json|csv|md` (each atomically; rewriting the same base replaces them). */
function writeReport(base: string, report: EvalReport): string[] {
  const csvRows = [
    'attack,robust_acc,success_rate,seconds,images_per_sec,n,eps,params',
    `clean,${report.clean_acc},,,,${report.n},${report.eps_str},`,
    ...report.attacks.map(
      (s) => `${s.attack},${s.robust_acc},${s.success_rate},${s.seconds.toFixed(3)},${s.images_per_sec.toFixed(2)},${report.n},${report.eps_str},"${JSON.stringify(s.params).replace(/"/g, '""')}"`,
    ),
    `worst_case,${report.worst_case_acc},,,,${report.n},${report.eps_str},`,
  ];
  writeJsonAtomic(base + '.json', report);
  writeFileAtomic(base + '.csv', csvRows.join('\n') + '\n');
  writeFileAtomic(base + '.md', evalMarkdown(report));
  return [base + '.json', base + '.csv', base + '.md'];
}

export function evalMarkdown(r: EvalReport): string {
  const pct = (v: number) => (100 * v).toFixed(2);
  const lines = [
    `# Evaluation of ${r.architecture} on ${r.dataset} (${r.checkpoint.tag}, epoch ${r.checkpoint.epoch})`,
    '',
    `n = ${r.n}, ε = ${r.eps_str} (${r.eps}), seed ${r.seed}, channel mask ${r.mask_applied ? 'applied' : 'not applied'}`,
    '',
    `| ${['Natural', ...r.attacks.map((a) => a.attack.toUpperCase()), 'Worst case'].join(' | ')} |`,
    `|${' --- |'.repeat(r.attacks.length + 2)}`,
    `| ${[pct(r.clean_acc), ...r.attacks.map((a) => pct(a.robust_acc)), pct(r.worst_case_acc)].join(' | ')} |`,
    '',
  ];
  for (const c of r.confusion) lines.push(confusionMarkdown(c), '');
  return lines.join('\n');
}
