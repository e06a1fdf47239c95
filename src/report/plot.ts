// `ibrar plot`: one figure kind for one run (or overlaid runs), drawn from the run's files into
// figures/. What a figure needs computing (t-SNE, the evaluations of a steps/ε sweep) the jobs
// compute first and save as ordinary run files (src/jobs/tsne.ts, src/jobs/figures.ts); this
// file only draws.
import { UserError } from '../errors';
import { getAttack } from '../attacks/registry';
import { runLayout } from '../runs/run-dir';
import { readTsneData } from '../runs/tsne-file';
import { curvesFigure, epsFigure, infoPlaneFigure, runRefs, stepsFigure, writeFigure, type FigureKind } from './figures';
import { tsneFigure } from './tsne-figure';

/** The attacks a steps/ε figure computes and draws when none are named (Fig. 2's and a budget sweep's). */
export const DEFAULT_SWEEP_ATTACKS: Record<'steps' | 'eps', string[]> = { steps: ['pgd', 'cw', 'nifgsm'], eps: ['pgd', 'fgsm'] };

export interface PlotRequest {
  runDirs: string[];
  kind: FigureKind;
  /** Output folder (default: the first run's figures/). */
  outDir?: string;
  attacks?: string[];
  /** steps/eps: whether the sweep's evaluations were just computed (then the default attacks are drawn). */
  computed?: boolean;
}

export function plot(req: PlotRequest): string[] {
  if (req.runDirs.length === 0) throw new UserError('plot needs at least one run directory');
  const refs = runRefs(req.runDirs);
  const outDir = req.outDir ?? runLayout(refs[0].runDir).figures;
  if ((req.kind === 'info-plane' || req.kind === 'tsne') && refs.length > 1) throw new UserError(`--kind ${req.kind} draws one run; give one run directory`);
  switch (req.kind) {
    case 'curves':
      return [writeFigure(outDir, 'curves', curvesFigure(refs))];
    case 'info-plane':
      return [writeFigure(outDir, 'info-plane', infoPlaneFigure(refs[0]))];
    case 'tsne':
      return [writeFigure(outDir, 'tsne', tsneFigure(readTsneData(refs[0].runDir), refs[0].label))];
    case 'steps':
    case 'eps': {
      const attacks = req.attacks?.length ? req.attacks.map((a) => getAttack(a).name) : req.computed ? DEFAULT_SWEEP_ATTACKS[req.kind] : undefined;
      const svg = req.kind === 'steps' ? stepsFigure(refs, { attacks }) : epsFigure(refs, { attacks });
      return [writeFigure(outDir, req.kind, svg)];
    }
    default:
      throw new UserError(`unknown figure kind '${String(req.kind)}'`);
  }
}
