// Computations that figures need, saved as ordinary run files before report/ draws them: the
// evaluations of a steps or ε sweep (each an eval/<time>.json of the run, so reports and later
// plots reuse them).
import { getAttack } from '../attacks/registry';
import { epsPoints, referenceSteps, stepsPoints, type RunRef } from '../report/figures';
import { DEFAULT_SWEEP_ATTACKS } from '../report/plot';
import { readEvalFiles } from '../report/runs';
import { evaluateRun } from './eval';

export const DEFAULT_STEPS = [1, 10, 20, 30, 40, 50];
export const DEFAULT_EPS = [0.01, 0.02, 0.03, 0.05, 0.08];

export interface SweepRequest {
  kind: 'steps' | 'eps';
  attacks?: string[];
  stepsList?: number[];
  epsList?: number[];
  n?: number;
  checkpoint?: 'last' | 'best';
  onNote?: (message: string) => void;
  shouldStop?: () => boolean;
}

/** Run the evaluations of a steps or ε sweep that no eval report of the run has yet. */
export async function computeSweep(ref: RunRef, req: SweepRequest): Promise<number> {
  const cfg = ref.config;
  const attacks = (req.attacks?.length ? req.attacks : DEFAULT_SWEEP_ATTACKS[req.kind]).map((a) => getAttack(a).name);
  let runs = 0;
  const base = { runDir: ref.runDir, checkpoint: req.checkpoint ?? cfg.eval.checkpoint, n: req.n ?? cfg.eval.n };
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

