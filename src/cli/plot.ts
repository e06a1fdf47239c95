import type { CommandModule } from 'yargs';
import { defaultContext, stopSignals } from './context';
import { UserError } from '../errors';
import { parseEps } from './eval';
import { FIGURE_KINDS, type FigureKind } from '../report/kinds';

interface PlotArgs {
  runs: string[];
  kind: FigureKind;
  out?: string;
  attacks?: string;
  compute: boolean;
  'steps-list'?: string;
  'eps-list'?: string;
  n?: number;
  attack?: string;
  perplexity?: number;
  iterations?: number;
  seed?: number;
  checkpoint?: 'last' | 'best';
  debug: boolean;
}

function numberList(text: string | undefined, what: string, parse: (s: string) => number): number[] | undefined {
  if (text === undefined) return undefined;
  const out = text.split(',').map((s) => s.trim()).filter(Boolean).map(parse);
  if (out.length === 0 || out.some((v) => !Number.isFinite(v))) throw new UserError(`expected a comma-separated list of numbers, found '${text}'`, undefined, what);
  return out;
}

export const plotCommand: CommandModule<object, PlotArgs> = {
  command: 'plot <runs..>',
  describe: 'draw SVG figures of a run (or overlaid runs) into its figures/ folder',
  builder: (y) =>
    y
      .positional('runs', { type: 'string', array: true, describe: 'run directories (several overlay for curves, steps, eps)' })
      .option('kind', { choices: FIGURE_KINDS, demandOption: true, describe: 'curves | info-plane | tsne | steps | eps' })
      .option('out', { type: 'string', describe: 'output folder (default: <first run>/figures)' })
      .option('attacks', { type: 'string', describe: 'steps/eps: comma-separated attacks (default: those evaluated; with --compute pgd,cw,nifgsm / pgd,fgsm)' })
      .option('compute', { type: 'boolean', default: false, describe: 'steps/eps: run the missing evaluations first' })
      .option('steps-list', { type: 'string', describe: 'steps to compute (default 1,10,20,30,40,50)' })
      .option('eps-list', { type: 'string', describe: 'ε values to compute (default 0.01,0.02,0.03,0.05,0.08; fractions like 8/255 allowed)' })
      .option('n', { type: 'number', describe: 'test examples: t-SNE points (default 500, ≤ 2000) or computed evaluations (default eval.n)' })
      .option('attack', { type: 'string', describe: 'tsne: attack for the adversarial panel (default pgd)' })
      .option('perplexity', { type: 'number', describe: 'tsne: perplexity (default 30)' })
      .option('iterations', { type: 'number', describe: 'tsne: iterations (default 1000)' })
      .option('seed', { type: 'number', describe: 'tsne: seed of the initial embedding (default 0)' })
      .option('checkpoint', { choices: ['last', 'best'] as const, describe: 'checkpoint for tsne and computed evaluations (default eval.checkpoint)' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const stepsList = numberList(args['steps-list'], '--steps-list', Number);
    const epsList = numberList(args['eps-list'], '--eps-list', parseEps);
    const attacks = args.attacks?.split(',').map((s) => s.trim()).filter(Boolean);
    const { plot } = await import('../report/plot');
    const { runRefs } = await import('../report/figures');
    const refs = runRefs(args.runs);
    const stop = stopSignals(ctx, { onFirst: 'stopping within the current attack iteration' });
    const onNote = (m: string) => ctx.err.write(m + '\n');
    try {
      // What the figure needs computing is computed first and saved as run files.
      if (args.kind === 'tsne') {
        if (refs.length > 1) throw new UserError('--kind tsne draws one run; give one run directory');
        const { computeTsneFile } = await import('../jobs/tsne');
        const { file } = await computeTsneFile({
          runDir: refs[0].runDir,
          n: args.n,
          attack: args.attack,
          checkpoint: args.checkpoint,
          perplexity: args.perplexity,
          iterations: args.iterations,
          seed: args.seed,
        });
        ctx.out.write(`wrote ${file}\n`);
      }
      if ((args.kind === 'steps' || args.kind === 'eps') && args.compute) {
        const { computeSweep } = await import('../jobs/figures');
        for (const ref of refs) {
          await computeSweep(ref, { kind: args.kind, attacks, stepsList, epsList, n: args.n, checkpoint: args.checkpoint, onNote, shouldStop: stop.requested });
        }
      }
      if (stop.requested()) {
        process.exitCode = stop.exitCode();
        return;
      }
      const files = plot({ runDirs: args.runs, kind: args.kind, outDir: args.out, attacks, computed: args.compute });
      ctx.out.write(files.map((f) => `wrote ${f}`).join('\n') + '\n');
    } finally {
      stop.dispose();
    }
  },
};
