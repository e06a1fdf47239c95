// The evaluation job: an opened run → attacks → eval/<timestamp>.{json,csv,md}. Streams the test
// set in batches and keeps per-example results in a state file, so an interrupted evaluation
// (Ctrl-C, even in the middle of a 200-step CW) continues where it stopped. The same request
// on the same checkpoint twice reuses the first report instead of writing a second one.
import { makeDirs } from '../engine/safe-read';
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { testBatches, toTensors, sliceSplit, type Split } from '../data';
import { getAttack, parseAttackList } from '../attacks/registry';
import { normOfParams, parseAttackParams, validKeys } from '../attacks/params';
import { predict } from '../attacks/common';
import { AttackInterrupted, yieldPointFor } from '../attacks/interrupt';
import type { AttackContext, AttackTarget } from '../attacks/types';
import { makeAdaptiveLoss } from '../ib/hooks';
import { runLayout } from '../runs/run-dir';
import { removeStaleTempFiles, writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { configHash } from '../runs/config-hash';
import { readEvalReport, EVAL_FORMAT, type AttackSummary, type EvalReport } from '../runs/eval-report';
import { readEvalState, writeEvalState, type EvalState } from '../runs/eval-state';
import { RunTensorBoard, type EvalDefaults } from '../runs/tensorboard-run';
import { confusionTendency } from '../report/confusion';
import { evalCsv, evalMarkdown, formatEps } from '../report/eval-tables';
import { openRun, type OpenedRun } from './open-run';

export interface EvalRequest {
  /** `last`, `best`, or a path to a checkpoint sidecar (`…/<tag>.json`). */
  checkpoint: string;
  attacks: string[];
  eps: number;
  steps?: number;
  n?: number;
  batchSize: number;
  seed: number;
  /** Per-attack parameter overrides, e.g. {cw: {c: 1}}. */
  params: Record<string, Record<string, unknown>>;
}

export interface EvalProgress {
  onStart?(info: { n: number; eps: number; attacks: string[]; resumed: boolean; resumedBatches: number; maskApplied: boolean }): void;
  onBatch?(info: { done: number; total: number; perAttack: Record<string, { correct: number; seen: number; seconds: number }> }): void;
  onDone?(report: EvalReport, files: string[], reused: boolean): void;
  onInterrupted?(info: { runDir: string; done: number; total: number }): void;
  onNote?(message: string): void;
}

export interface EvalOutcome {
  report: EvalReport | null;
  files: string[];
  interrupted: boolean;
  /** An identical earlier evaluation's report was returned instead of computing it again. */
  reused: boolean;
}

export interface EvalOptions {
  progress?: EvalProgress;
  shouldStop?: () => boolean;
  /** Compute again even when an identical evaluation exists. */
  fresh?: boolean;
  /** Crafts transfer attacks' examples (`--surrogate RUN_DIR`). */
  surrogate?: AttackTarget;
}

/** The run's own evaluation settings (config `eval`), with any of them overridden. */
export function evalRequestFromConfig(cfg: ExperimentConfig, over: Partial<EvalRequest> = {}): EvalRequest {
  const e = cfg.eval;
  return {
    checkpoint: over.checkpoint ?? e.checkpoint,
    attacks: over.attacks ?? e.attacks,
    eps: over.eps ?? e.eps,
    steps: over.steps ?? e.steps,
    n: over.n ?? e.n,
    batchSize: over.batchSize ?? e.batchSize,
    seed: over.seed ?? e.seed,
    params: mergeParams(e.params, over.params ?? {}),
  };
}

function mergeParams(a: EvalRequest['params'], b: EvalRequest['params']): EvalRequest['params'] {
  const out: EvalRequest['params'] = {};
  for (const [k, v] of Object.entries(a)) out[k] = { ...v };
  for (const [k, v] of Object.entries(b)) out[k] = { ...(out[k] ?? {}), ...v };
  return out;
}

/**
 * One attack's resolved parameters: ε and steps where the attack has them, then the overrides,
 * through the attack's schema (which fills in every default, derived ones such as PGD's α too).
 */
export function attackParams(name: string, req: Pick<EvalRequest, 'eps' | 'steps'> & { params?: EvalRequest['params'] }): Record<string, unknown> {
  const attack = getAttack(name);
  const keys = validKeys(attack.paramsSchema);
  const user = req.params?.[attack.name] ?? {};
  // The evaluation's ε is an L∞ budget: it goes to attacks that run in L∞ (with the parameters
  // given); L2 and L1 attacks keep their own budgets unless one is given for them.
  const norm = normOfParams(attack, parseAttackParams(attack.name, attack.paramsSchema, user) as Record<string, unknown>);
  const raw: Record<string, unknown> = {};
  if (keys.includes('eps') && norm === 'linf') raw.eps = req.eps;
  if (req.steps !== undefined && keys.includes('steps')) raw.steps = req.steps;
  Object.assign(raw, user);
  return parseAttackParams(attack.name, attack.paramsSchema, raw) as Record<string, unknown>;
}

function requestKey(ckptSha: string, attacks: string[], params: Record<string, unknown>, req: EvalRequest, n: number): string {
  return createHash('sha256')
    .update(JSON.stringify({ ckptSha, attacks, params, n, batchSize: req.batchSize, seed: req.seed }))
    .digest('hex')
    .slice(0, 16);
}

/** The newest report in eval/ made for exactly this request, if any. */
function findReport(evalDir: string, key: string): { report: EvalReport; files: string[] } | null {
  let names: string[];
  try {
    names = fs.readdirSync(evalDir);
  } catch {
    return null;
  }
  const hits = names
    .filter((n) => n.endsWith('.json') && !n.startsWith('.') && !n.endsWith('-diagnostics.json'))
    .map((n) => ({ file: path.join(evalDir, n), report: readEvalReport(path.join(evalDir, n)) }))
    .filter((h): h is { file: string; report: EvalReport } => h.report?.key === key)
    .sort((a, b) => (a.report.createdAt < b.report.createdAt ? 1 : -1));
  if (!hits.length) return null;
  const base = hits[0].file.slice(0, -'.json'.length);
  return { report: hits[0].report, files: [`${base}.json`, `${base}.csv`, `${base}.md`].filter((f) => fs.existsSync(f)) };
}

function countCorrect(preds: ArrayLike<number>, labels: Int32Array): number {
  let c = 0;
  for (let i = 0; i < preds.length; i++) if (preds[i] === labels[i]) c++;
  return c;
}

export async function evaluate(run: OpenedRun, req: EvalRequest, opts: EvalOptions = {}): Promise<EvalOutcome> {
  const { cfg, dataset } = run;
  if (req.attacks.length === 0) {
    throw new UserError('no attacks to run: the run\'s config has no eval.attacks; name them with --attacks (e.g. --attacks pgd,cw,fgsm,fab,nifgsm)', undefined, '--attacks');
  }
  const attacks = parseAttackList(req.attacks.join(','));
  const params: Record<string, Record<string, unknown>> = {};
  for (const a of attacks) params[a] = attackParams(a, req);
  if (!(req.eps >= 0 && req.eps <= 1)) throw new UserError(`eps must be in [0, 1], found ${req.eps}`, undefined, '--eps');
  const layout = run.layout ?? runLayout('.');
  const loaded = run.checkpoint;
  const same = loaded && (loaded.tag === req.checkpoint || path.resolve(req.checkpoint) === path.join(loaded.dir, `${loaded.tag}.json`));
  const ckpt = same ? loaded : run.useCheckpoint(req.checkpoint);
  const n = Math.min(req.n ?? dataset.test.n, dataset.test.n);
  const split: Split = sliceSplit(dataset.test, 0, n);
  const numBatches = Math.ceil(n / req.batchSize);
  const key = requestKey(ckpt.sidecar.files.weights.sha256, attacks, params, req, n);
  const maskApplied = run.evalMask !== null;

  onDisk(layout.evalDir, () => {
    makeDirs(layout.evalDir);
    // Temp files of an evaluation killed mid-write (their writer's pid is gone).
    removeStaleTempFiles(layout.evalDir);
  });
  // An unfinished evaluation of this request is continued first (it is the same computation);
  // else an identical finished one is reused unless `fresh`.
  const statePath = path.join(layout.evalDir, `.state-${key}.json`);
  let state: EvalState = { format: 'ibrar-eval-state/1', key, n, batchSize: req.batchSize, doneBatches: 0, clean: [], preds: {}, dist: {}, seconds: {}, extraSums: {} };
  const saved = readEvalState(statePath, { key, n, batchSize: req.batchSize, attacks, numClasses: dataset.numClasses });
  if (saved && 'state' in saved) state = saved.state;
  else {
    if (saved) opts.progress?.onNote?.(`discarding the saved state of this evaluation (${saved.problem}); starting it over`);
    const earlier = opts.fresh ? null : findReport(layout.evalDir, key);
    if (earlier) {
      opts.progress?.onDone?.(earlier.report, earlier.files, true);
      return { report: earlier.report, files: earlier.files, interrupted: false, reused: true };
    }
  }
  for (const a of attacks) {
    state.preds[a] ??= [];
    state.seconds[a] ??= 0;
    state.extraSums[a] ??= {};
  }
  const resumed = saved !== null && 'state' in saved;
  opts.progress?.onStart?.({ n, eps: req.eps, attacks, resumed, resumedBatches: state.doneBatches, maskApplied });
  // On disk from the start: an evaluation stopped in its first batch is continued like any other.
  if (!resumed) writeState(statePath, state, layout.evalDir);

  const target = run.target();
  const adaptive = attacks.includes('pgd-ad') ? makeAdaptiveLoss(cfg, run.model) : undefined;
  const shouldStop = opts.shouldStop ?? (() => false);
  const yieldPoint = yieldPointFor(shouldStop);
  const interrupted = (): EvalOutcome => {
    opts.progress?.onInterrupted?.({ runDir: layout.dir, done: state.clean.length, total: n });
    return { report: null, files: [], interrupted: true, reused: false };
  };
  let b = 0;
  for (const batch of testBatches(split, req.batchSize)) {
    if (b++ < state.doneBatches) continue;
    const { x, y, yOneHot } = toTensors(batch, dataset.numClasses);
    // A batch is recorded whole or not at all: an interrupted attack leaves the state as it was.
    const clean: number[] = [];
    const preds: Record<string, number[]> = {};
    const dist: Record<string, Array<number | null>> = {};
    const seconds: Record<string, number> = {};
    const extra: Record<string, Record<string, number>> = {};
    try {
      clean.push(...(await predict(target, x)));
      for (const a of attacks) {
        const ctx: AttackContext = { target, rng: new Rng(req.seed).fork(`${a}-${b - 1}`), extraLoss: adaptive, yieldPoint, surrogate: opts.surrogate };
        const t0 = process.hrtime.bigint();
        const res = await getAttack(a).run(ctx, x, y, params[a] as never);
        seconds[a] = Number(process.hrtime.bigint() - t0) / 1e9;
        preds[a] = Array.from(await predict(target, res.xAdv).finally(() => res.xAdv.dispose()));
        if (res.distances) dist[a] = Array.from(res.distances, (d) => (Number.isFinite(d) ? d : null));
        extra[a] = {};
        for (const [k, v] of Object.entries(res.extra ?? {})) extra[a][k] = v * batch.n;
        if (res.queries !== undefined) extra[a].queries = res.queries;
      }
    } catch (err) {
      if (err instanceof AttackInterrupted) return interrupted();
      throw err;
    } finally {
      tf.dispose([x, y, yOneHot]);
    }
    state.clean.push(...clean);
    for (const a of attacks) {
      state.preds[a].push(...preds[a]);
      if (dist[a]) (state.dist[a] ??= []).push(...dist[a]);
      state.seconds[a] += seconds[a];
      for (const [k, v] of Object.entries(extra[a])) state.extraSums[a][k] = (state.extraSums[a][k] ?? 0) + v;
    }
    state.doneBatches = b;
    writeState(statePath, state, layout.evalDir);
    const seen = state.clean.length;
    const perAttack: Record<string, { correct: number; seen: number; seconds: number }> = {};
    for (const a of attacks) perAttack[a] = { correct: countCorrect(state.preds[a], split.labels), seen, seconds: state.seconds[a] };
    opts.progress?.onBatch?.({ done: seen, total: n, perAttack });
    // Let signal handlers run: attacks are synchronous compute between awaits of resolved promises.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (shouldStop() && b < numBatches) return interrupted();
  }

  if (!state.report) {
    const createdAt = new Date().toISOString();
    state.report = { createdAt, base: path.basename(freeReportBase(layout.evalDir, createdAt)) };
    writeState(statePath, state, layout.evalDir);
  }
  const report = buildReport(run, req, split, state, attacks, params, key);
  const files = writeReportFiles(path.join(layout.evalDir, state.report.base), report);
  if (run.layout) {
    const tb = RunTensorBoard.open(run.layout.dir, cfg.train.tensorboard);
    try {
      tb?.evaluation(report, evalDefaults(cfg, dataset.test.n, attacks));
    } finally {
      tb?.close();
    }
  }
  onDisk(layout.evalDir, () => fs.rmSync(statePath, { force: true }));
  opts.progress?.onDone?.(report, files, false);
  return { report, files, interrupted: false, reused: false };
}

/**
 * The run's own evaluation settings, resolved for `attacks`: TensorBoard tags an evaluation by
 * how it differs from them.
 */
function evalDefaults(cfg: ExperimentConfig, testN: number, attacks: readonly string[]): EvalDefaults {
  const own = evalRequestFromConfig(cfg);
  const params: EvalDefaults['params'] = {};
  for (const a of attacks) params[a] = attackParams(a, own);
  const ownAttacks = own.attacks.length ? parseAttackList(own.attacks.join(',')) : [];
  return { n: Math.min(own.n ?? testN, testN), seed: own.seed, attacks: ownAttacks, params };
}

/**
 * Open a run and evaluate it: the run's `eval` settings, with any of them overridden (the
 * library form of `ibrar eval`).
 */
export async function evaluateRun(req: { runDir: string } & Partial<EvalRequest>, opts: EvalOptions = {}): Promise<EvalOutcome> {
  const { runDir, ...over } = req;
  // Arguments first: a typo in an attack name should not wait for a dataset to load.
  if (over.attacks) parseAttackList(over.attacks.join(','));
  const run = await openRun({ kind: 'existing', runDir, checkpoint: 'none' }, { onNote: opts.progress?.onNote });
  try {
    return await evaluate(run, evalRequestFromConfig(run.cfg, over), opts);
  } finally {
    run.dispose();
  }
}

/** A file-system step of the evaluation: a full, read-only or missing disk is bad environment (exit 2), not a bug. */
function onDisk(dir: string, step: () => void): void {
  try {
    step();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (err instanceof UserError || typeof code !== 'string') throw err;
    throw new UserError(`cannot use the evaluation folder (${code}); free space or fix the folder, then run the same command again`, dir);
  }
}

/** A full or read-only disk during an evaluation is an environment problem, not a bug. */
function writeState(file: string, state: EvalState, dir: string): void {
  try {
    writeEvalState(file, state);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw err;
    throw new UserError(`cannot save the evaluation state (${code}); free space or fix the folder, then run the same command again`, dir);
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function buildReport(run: OpenedRun, req: EvalRequest, split: Split, state: EvalState, attacks: string[], params: Record<string, Record<string, unknown>>, key: string): EvalReport {
  const { cfg, dataset } = run;
  const ckpt = run.checkpoint!;
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
    const fooledDist: number[] = [];
    const minNorms: Array<number | null> = [];
    for (let i = 0; i < n; i++) {
      if (state.clean[i] !== labels[i]) continue;
      if (state.dist[a]) minNorms.push(state.dist[a][i] ?? null);
      if (state.preds[a][i] === labels[i]) continue;
      flipped++;
      const d = state.dist[a]?.[i];
      if (d !== undefined && d !== null) fooledDist.push(d);
    }
    const extra: Record<string, number> = {};
    for (const [k, v] of Object.entries(state.extraSums[a])) extra[k] = k === 'queries' ? v : v / n;
    const norm = normOfParams(getAttack(a), params[a]);
    return {
      attack: a,
      params: params[a],
      robust_acc: countCorrect(state.preds[a], labels) / n,
      success_rate: cleanCorrect ? flipped / cleanCorrect : 0,
      seconds: state.seconds[a],
      images_per_sec: state.seconds[a] > 0 ? n / state.seconds[a] : 0,
      ...(state.dist[a] && fooledDist.length && norm !== 'none'
        ? { mean_distance: fooledDist.reduce((s, v) => s + v, 0) / fooledDist.length, median_distance: median(fooledDist), distance_norm: norm }
        : {}),
      ...(state.dist[a] && norm !== 'none' ? { min_norms: minNorms } : {}),
      extra,
    };
  });
  const aa = summaries.find((s) => s.attack === 'autoattack');
  return {
    format: EVAL_FORMAT,
    key,
    runDir: run.layout?.dir ?? '.',
    checkpoint: { tag: ckpt.tag, epoch: ckpt.sidecar.epoch, file: path.join(ckpt.dir, `${ckpt.tag}.json`) },
    configHash: configHash(cfg),
    architecture: cfg.model.arch + (cfg.model.width !== 1 ? `-w${cfg.model.width}` : ''),
    dataset: cfg.data.dataset,
    n,
    eps: req.eps,
    eps_str: formatEps(req.eps),
    seed: req.seed,
    mask_applied: run.evalMask !== null,
    clean_acc: cleanCorrect / n,
    attacks: summaries,
    worst_case_acc: worst / n,
    confusion: attacks.map((a) => confusionTendency(a, labels, state.preds[a], dataset.classNames)),
    robustbench: {
      clean_acc: cleanCorrect / n,
      ...(aa ? { autoattack_acc: aa.robust_acc } : {}),
      eps: formatEps(req.eps),
      architecture: cfg.model.arch,
      dataset: cfg.data.dataset,
      threat_model: 'Linf',
    },
    createdAt: state.report!.createdAt,
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
export function writeReportFiles(base: string, report: EvalReport): string[] {
  try {
    writeJsonAtomic(base + '.json', report);
    writeFileAtomic(base + '.csv', evalCsv(report));
    writeFileAtomic(base + '.md', evalMarkdown(report));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw err;
    throw new UserError(`cannot write the evaluation report (${code}); the results are kept in the state file: free space, then run the same command again`, path.dirname(base));
  }
  return [base + '.json', base + '.csv', base + '.md'];
}
