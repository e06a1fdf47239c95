// The figures of `ibrar plot`, drawn from a run's own files:
//   curves      metrics.jsonl (+ adv_curve.jsonl): loss, clean/train/adversarial accuracy per epoch
//   info-plane  info_plane.jsonl: HSIC(X,T_l) vs HSIC(Y,T_l), one panel per tap (paper Fig. 5)
//   tsne        the checkpoint + test set: t-SNE of the last tap, clean vs adversarial (Fig. 3)
//   steps       eval/*.json: accuracy against attack steps at one ε (Fig. 2)
//   eps         eval/*.json: accuracy against ε at each attack's configured steps
// Several runs can be overlaid (curves, steps, eps); the figure goes to the first run's
// figures/ folder unless another is given.
import { makeDirs } from '../engine/safe-read';
import * as fs from 'fs';
import * as path from 'path';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { readMetrics } from '../runs/metrics';
import { runLayout } from '../runs/run-dir';
import { writeFileAtomic } from '../runs/atomic';
import { readAdvCurve, readInfoPlane } from '../runs/monitor-files';
import { getAttack } from '../attacks/registry';
import { categorical, viridis } from './colors';
import { readEvalFiles, readRunConfig, type EvalFile } from './runs';
import { epsWords, renderFigure, type LegendEntry, type LineSeries, type Panel } from './svg';
import type { FigureKind } from './kinds';
export { FIGURE_KINDS, type FigureKind } from './kinds';

export interface RunRef {
  runDir: string;
  config: ExperimentConfig;
  label: string;
}

/** Labels for overlaid runs: the config name, with the seed when names repeat. */
export function runRefs(runDirs: readonly string[]): RunRef[] {
  const configs = runDirs.map((d) => {
    if (!fs.existsSync(runLayout(d).config)) throw new UserError('not a run directory (config.yaml missing)', d);
    return readRunConfig(d);
  });
  const names = configs.map((c) => c.name);
  return runDirs.map((runDir, i) => {
    const c = configs[i];
    const dup = names.filter((n) => n === c.name).length > 1;
    const label = dup ? `${c.name} (seed ${c.seed}, ${path.basename(runDir)})` : c.name;
    return { runDir, config: c, label };
  });
}

const DASH = { solid: undefined, dashed: '6 3', dotted: '2 3', dashDot: '9 3 2 3' } as const;

// ---------------------------------------------------------------- training curves

export function curvesFigure(refs: readonly RunRef[]): string {
  const single = refs.length === 1;
  const loss: LineSeries[] = [];
  const accuracy: LineSeries[] = [];
  const legend: LegendEntry[] = [];
  let anyAdv = false;
  let anyCe = false;
  refs.forEach((ref, i) => {
    const rows = readMetrics(ref.runDir);
    const adv = readAdvCurve(ref.runDir);
    const num = (r: Record<string, unknown>, k: string) => (typeof r[k] === 'number' ? (r[k] as number) : NaN);
    const series = (key: string, scale: number) => rows.filter((r) => Number.isFinite(num(r, key))).map((r) => [num(r, 'epoch'), scale * num(r, key)] as [number, number]);
    const name = (m: string) => (single ? m : `${ref.label} · ${m}`);
    const color = (k: number) => categorical(single ? k : i);
    loss.push({ name: name('train loss'), points: series('train_loss', 1), color: color(0) });
    if (rows.some((r) => typeof r.ce === 'number' && r.ce !== r.train_loss)) {
      anyCe = true;
      loss.push({ name: name('CE'), points: series('ce', 1), color: color(1), dash: DASH.dashDot });
    }
    accuracy.push({ name: name('test (clean)'), points: series('test_acc', 100), color: color(single ? 2 : 0) });
    accuracy.push({ name: name('train'), points: series('train_acc', 100), color: color(0), dash: DASH.dashed });
    if (adv.length) {
      anyAdv = true;
      const a = adv[0];
      accuracy.push({
        name: name(`adversarial (${a.attack.toUpperCase()}, ε ${epsWords(a.eps)}, n ${a.n})`),
        points: adv.map((r) => [r.epoch, 100 * r.adv_acc] as [number, number]),
        color: color(single ? 3 : 0),
        dash: DASH.dotted,
      });
    }
    if (!single) legend.push({ name: ref.label, color: color(0) });
  });
  if (single) for (const s of [...loss, ...accuracy]) legend.push({ name: s.name, color: s.color, dash: s.dash });
  else {
    legend.push({ name: 'train loss / test accuracy', color: '#333' }, { name: 'train accuracy', color: '#333', dash: DASH.dashed });
    if (anyCe) legend.push({ name: 'CE part of the loss', color: '#333', dash: DASH.dashDot });
    if (anyAdv) legend.push({ name: 'adversarial (held-out)', color: '#333', dash: DASH.dotted });
  }
  const panels: Panel[] = [
    { title: 'Loss', xLabel: 'epoch', yLabel: 'loss', lines: loss, integerX: true },
    { title: 'Accuracy', xLabel: 'epoch', yLabel: 'accuracy (%)', lines: accuracy, integerX: true },
  ];
  return renderFigure({
    title: single ? `Training curves: ${refs[0].label}` : 'Training curves',
    panels,
    columns: 2,
    legend,
    note: anyAdv ? undefined : 'No adversarial accuracy per epoch recorded (set train.monitor.advAccEvery).',
  });
}

// ---------------------------------------------------------------- information plane

export function infoPlaneFigure(ref: RunRef): string {
  const recs = readInfoPlane(ref.runDir);
  if (recs.length === 0) {
    throw new UserError('no info_plane.jsonl records in this run; train with train.monitor.infoPlaneEvery set (e.g. --set train.monitor.infoPlaneEvery=50)', ref.runDir);
  }
  const layers = Object.keys(recs[0].hx);
  const panels: Panel[] = layers.map((layer) => ({
    title: layer,
    xLabel: 'HSIC(X, T)',
    yLabel: 'HSIC(Y, T)',
    scatter: {
      name: layer,
      path: true,
      points: recs.filter((r) => layer in r.hx).map((r) => ({ x: r.hx[layer], y: r.hy[layer], color: viridis(r.progress), label: r.step })),
    },
  }));
  const last = recs[recs.length - 1];
  return renderFigure({
    title: `Information plane: ${ref.label} (n = ${recs[0].n} held-out test examples)`,
    panels,
    columns: Math.min(4, panels.length),
    panelWidth: 300,
    panelHeight: 260,
    colorBar: { label: 'training', from: 'start', to: `step ${last.step}`, colormap: viridis },
  });
}

// ---------------------------------------------------------------- accuracy vs steps / ε

interface SweepPoint {
  x: number;
  acc: number;
  createdAt: string;
}

const FIG2_ATTACKS = ['pgd', 'cw', 'nifgsm'];

function sweepAttacks(evals: readonly EvalFile[], wanted: readonly string[] | undefined, needSteps: boolean): string[] {
  if (wanted && wanted.length) return [...wanted];
  const found: string[] = [];
  for (const e of evals) {
    for (const a of e.report.attacks) {
      if (needSteps && typeof a.params.steps !== 'number') continue;
      if (!found.includes(a.attack)) found.push(a.attack);
    }
  }
  return [...FIG2_ATTACKS.filter((a) => found.includes(a)), ...found.filter((a) => !FIG2_ATTACKS.includes(a))];
}

/** steps of `attack` the eps sweep compares at: eval.steps when the attack has steps, else its default. */
export function referenceSteps(cfg: ExperimentConfig, attack: string): number | null {
  const defaults = getAttack(attack).defaults as Record<string, unknown>;
  if (typeof defaults.steps !== 'number') return null;
  return cfg.eval.steps ?? defaults.steps;
}

function upsert(points: Map<number, SweepPoint>, p: SweepPoint): void {
  const old = points.get(p.x);
  if (!old || old.createdAt <= p.createdAt) points.set(p.x, p);
}

/** (steps, accuracy) of `attack` at ε = eps from a run's evaluation reports (newest wins). */
export function stepsPoints(evals: readonly EvalFile[], attack: string, eps: number): Array<[number, number]> {
  const pts = new Map<number, SweepPoint>();
  for (const e of evals) {
    if (Math.abs(e.report.eps - eps) > 1e-9) continue;
    for (const a of e.report.attacks) {
      if (a.attack === attack && typeof a.params.steps === 'number') upsert(pts, { x: a.params.steps, acc: a.robust_acc, createdAt: e.report.createdAt });
    }
  }
  return [...pts.values()].sort((a, b) => a.x - b.x).map((p) => [p.x, p.acc]);
}

/** (ε, accuracy) of `attack` at its reference steps, plus (0, clean accuracy). */
export function epsPoints(evals: readonly EvalFile[], attack: string, steps: number | null): Array<[number, number]> {
  const pts = new Map<number, SweepPoint>();
  for (const e of evals) {
    for (const a of e.report.attacks) {
      if (a.attack !== attack) continue;
      if (steps !== null && a.params.steps !== steps) continue;
      upsert(pts, { x: e.report.eps, acc: a.robust_acc, createdAt: e.report.createdAt });
      upsert(pts, { x: 0, acc: e.report.clean_acc, createdAt: e.report.createdAt });
    }
  }
  return [...pts.values()].sort((a, b) => a.x - b.x).map((p) => [p.x, p.acc]);
}

/**
 * A minimum-norm attack's whole accuracy-against-ε curve from one evaluation: at each ε, the
 * share of the test examples that were correct and needed a perturbation larger than ε.
 */
export function minNormCurve(evals: readonly EvalFile[], attack: string): { points: Array<[number, number]>; file: string } | null {
  for (let k = evals.length - 1; k >= 0; k--) {
    const r = evals[k].report;
    const a = r.attacks.find((s) => s.attack === attack && s.min_norms && s.distance_norm === 'linf');
    if (!a) continue;
    const norms = a.min_norms!;
    const finite = norms.filter((v): v is number => v !== null).sort((x, y) => x - y);
    const hi = Math.max(r.eps, ...finite.slice(-1));
    const points: Array<[number, number]> = [];
    for (let j = 0; j <= 50; j++) {
      const e = (hi * j) / 50;
      const robust = norms.filter((v) => v === null || v > e).length;
      points.push([e, robust / r.n]);
    }
    return { points, file: evals[k].file };
  }
  return null;
}

export function stepsFigure(refs: readonly RunRef[], opts: { attacks?: string[]; eps?: number } = {}): string {
  const evals = refs.map((r) => readEvalFiles(r.runDir));
  const attacks = sweepAttacks(evals.flat(), opts.attacks, true);
  const eps = opts.eps ?? refs[0].config.eval.eps;
  const all: Panel[] = attacks.map((attack) => ({
    title: `${attack.toUpperCase()} (ε = ${epsWords(eps)})`,
    xLabel: 'attack steps',
    yLabel: 'accuracy (%)',
    integerX: true,
    lines: refs.map((r, i) => ({ name: `${r.label} · ${attack}`, color: categorical(i), points: stepsPoints(evals[i], attack, eps).map(([x, y]) => [x, 100 * y] as [number, number]) })),
  }));
  // An attack without a single point gets no (empty) panel; the note says which and why.
  const hasPoints = (p: Panel) => (p.lines ?? []).some((l) => l.points.length > 0);
  const panels = all.filter(hasPoints);
  const missing = attacks.filter((_, i) => !hasPoints(all[i]));
  if (panels.length === 0) {
    throw new UserError(`no evaluations with a steps parameter at ε = ${epsWords(eps)}; add points with \`ibrar plot RUN --kind steps --compute\` or \`ibrar eval --steps N\``);
  }
  const note = [missing.length ? `No evaluations at ε = ${epsWords(eps)} with ${missing.join(', ')} (add them with --compute --attacks ${missing.join(',')}).` : '', vibNote(refs) ?? ''].filter(Boolean).join(' ');
  return renderFigure({
    title: 'Accuracy against attack steps',
    panels,
    columns: Math.min(3, panels.length),
    legend: refs.map((r, i) => ({ name: r.label, color: categorical(i) })),
    note: note || undefined,
  });
}

export function epsFigure(refs: readonly RunRef[], opts: { attacks?: string[] } = {}): string {
  const evals = refs.map((r) => readEvalFiles(r.runDir));
  const attacks = sweepAttacks(evals.flat(), opts.attacks, false);
  const panels: Panel[] = attacks.map((attack) => {
    const steps = referenceSteps(refs[0].config, attack);
    return {
      title: `${attack.toUpperCase()}${steps !== null ? ` (${steps} steps)` : ''}`,
      xLabel: 'ε (L∞)',
      yLabel: 'accuracy (%)',
      lines: refs.map((r, i) => {
        // A minimum-norm attack's one evaluation gives the whole curve; else one point per evaluation.
        const curve = minNormCurve(evals[i], attack);
        const points = curve ? curve.points : epsPoints(evals[i], attack, referenceSteps(r.config, attack));
        return { name: `${r.label} · ${attack}${curve ? ' (minimum norms)' : ''}`, color: categorical(i), points: points.map(([x, y]) => [x, 100 * y] as [number, number]) };
      }),
    };
  });
  const empty = panels.every((p) => (p.lines ?? []).every((l) => l.points.length === 0));
  if (panels.length === 0 || empty) throw new UserError('no evaluations to plot against ε; add points with `ibrar plot RUN --kind eps --compute` or `ibrar eval --eps E`');
  return renderFigure({
    title: 'Accuracy against ε',
    panels,
    columns: Math.min(3, panels.length),
    legend: refs.map((r, i) => ({ name: r.label, color: categorical(i) })),
    note: vibNote(refs),
  });
}

function vibNote(refs: readonly RunRef[]): string | undefined {
  return refs.some((r) => r.config.model.head === 'vib') ? 'VIB: attacks differentiate through the average of the evaluation softmaxes (fixed noise).' : undefined;
}

export function figurePath(outDir: string, kind: FigureKind): string {
  return path.join(outDir, `${kind}.svg`);
}

export function writeFigure(outDir: string, kind: FigureKind, svg: string): string {
  makeDirs(outDir);
  const file = figurePath(outDir, kind);
  writeFileAtomic(file, svg);
  return file;
}
