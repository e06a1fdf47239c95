// `ibrar plot`: one figure kind for one run (or overlaid runs), written to figures/. For the
// steps/ε sweeps, `compute` first runs the missing evaluations (each one an ordinary
// eval/<time>.json of the run, so reports and later plots reuse them).
import { UserError } from '../errors';
import { evaluateRun } from '../eval/evaluate';
import { getAttack } from '../attacks/registry';
import { runLayout } from '../runs/run-dir';
import { curvesFigure, epsFigure, epsPoints, infoPlaneFigure, referenceSteps, runRefs, stepsFigure, stepsPoints, writeFigure, type FigureKind, type RunRef } from './figures';
import { readEvalFiles } from './runs';
import { computeTsne, tsneFigure, writeTsneData } from './tsne-figure';

export const DEFAULT_STEPS = [1, 10, 20, 30, 40, 50];
export const DEFAULT_EPS = [0.01, 0.02, 0.03, 0.05, 0.08];
const DEFAULT_SWEEP_ATTACKS = { steps: ['pgd', 'cw', 'nifgsm'], eps: ['pgd', 'fgsm'] };

export interface PlotRequest {
  runDirs: string[];
  kind: FigureKind;
  /** Output folder (default: the first run's figures/). */
  outDir?: string;
  attacks?: string[];
  /** Run the evaluations a steps/eps figure lacks first. */
  compute?: boolean;
  stepsList?: number[];
  epsList?: number[];
  /** Test examples for computed sweeps and t-SNE. */
  n?: number;
  /** t-SNE: attack, perplexity, iterations, seed. */
  attack?: string;
  perplexity?: number;
  iterations?: number;
  seed?: number;
  checkpoint?: 'last' | 'best';
  onNote?: (message: string) => void;
  shouldStop?: () => boolean;
}

/** Run the evaluations of a steps or ε sweep that no eval report of the run has yet. */
export async function computeSweep(ref: RunRef, req: PlotRequest & { kind: 'steps' | 'eps' }): Promise<number> {
  const cfg = ref.config;
  const attacks = (req.attacks?.length ? req.attacks : DEFAULT_SWEEP_ATTACKS[req.kind]).map((a) => getAttack(a).name);
  let runs = 0;
  const base = { runDir: ref.runDir, checkpoint: req.checkpoint ?? cfg.eval.checkpoint, n: req.n ?? cfg.eval.n, batchSize: cfg.eval.batchSize, seed: cfg.seed };
  if (req.kind === 'steps') {
    const stepped = attacks.filter((a) => typeof (getAttack(a).defaults as Record<string, unknown>).steps === 'number');
    const skipped = attacks.filter((a) => !stepped.includes(a));
    if (skipped.length) req.onNote?.(`skipping ${skipped.join(', ')}: no steps parameter`);
    for (const steps of req.stepsList ?? DEFAULT_STEPS) {
      if (req.shouldStop?.()) break;
      const evals = readEvalFiles(ref.runDir);
      const missing = stepped.filter((a) => !stepsPoints(evals, a, cfg.eval.eps).some(([x]) => x === steps));
      if (missing.length === 0) continue;
      req.onNote?.(`${ref.label}: evaluating ${missing.join(', ')} with ${steps} steps`);
      await evaluateRun({ ...base, attacks: missing, eps: cfg.eval.eps, steps }, { shouldStop: req.shouldStop });
      runs++;
    }
  } else {
    for (const eps of req.epsList ?? DEFAULT_EPS) {
      if (req.shouldStop?.()) break;
      const evals = readEvalFiles(ref.runDir);
      const missing = attacks.filter((a) => !epsPoints(evals, a, referenceSteps(cfg, a)).some(([x]) => Math.abs(x - eps) < 1e-12));
      if (missing.length === 0) continue;
      req.onNote?.(`${ref.label}: evaluating ${missing.join(', ')} at ε = ${eps}`);
      await evaluateRun({ ...base, attacks: missing, eps, steps: cfg.eval.steps }, { shouldStop: req.shouldStop });
      runs++;
    }
  }
  return runs;
}

export async function plot(req: PlotRequest): Promise<string[]> {
  if (req.runDirs.length === 0) throw new UserError('plot needs at least one run directory');
  const refs = runRefs(req.runDirs);
  const outDir = req.outDir ?? runLayout(refs[0].runDir).figures;
  if ((req.kind === 'info-plane' || req.kind === 'tsne') && refs.length > 1) throw new UserError(`--kind ${req.kind} draws one run; give one run directory`);
  switch (req.kind) {
    case 'curves':
      return [writeFigure(outDir, 'curves', curvesFigure(refs))];
    case 'info-plane':
      return [writeFigure(outDir, 'info-plane', infoPlaneFigure(refs[0]))];
    case 'tsne': {
      const data = await computeTsne({
        runDir: refs[0].runDir,
        n: req.n,
        attack: req.attack,
        checkpoint: req.checkpoint,
        perplexity: req.perplexity,
        iterations: req.iterations,
        seed: req.seed,
      });
      return [writeFigure(outDir, 'tsne', tsneFigure(data, refs[0].label)), writeTsneData(outDir, data)];
    }
    case 'steps':
    case 'eps': {
      if (req.compute) for (const ref of refs) await computeSweep(ref, { ...req, kind: req.kind });
      const attacks = req.attacks?.length ? req.attacks.map((a) => getAttack(a).name) : req.compute ? DEFAULT_SWEEP_ATTACKS[req.kind] : undefined;
      const svg = req.kind === 'steps' ? stepsFigure(refs, { attacks }) : epsFigure(refs, { attacks });
      return [writeFigure(outDir, req.kind, svg)];
    }
    default:
      throw new UserError(`unknown figure kind '${String(req.kind)}'`);
  }
}
