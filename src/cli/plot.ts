import type { CommandModule } from 'yargs';
import { defaultContext } from './context';
import { EXIT, UserError } from '../errors';
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
    const { plot } = await import('../report/plot');
    let signal: NodeJS.Signals | null = null;
    const onSignal = (sig: NodeJS.Signals) => {
      if (signal) process.exit(sig === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
      signal = sig;
      ctx.err.write(`\n${sig}: stopping after the current batch\n`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const files = await plot({
        runDirs: args.runs,
        kind: args.kind,
        outDir: args.out,
        attacks: args.attacks?.split(',').map((s) => s.trim()).filter(Boolean),
        compute: args.compute,
        stepsList: numberList(args['steps-list'], '--steps-list', Number),
        epsList: numberList(args['eps-list'], '--eps-list', parseEps),
        n: args.n,
        attack: args.attack,
        perplexity: args.perplexity,
        iterations: args.iterations,
        seed: args.seed,
        checkpoint: args.checkpoint,
        onNote: (m) => ctx.err.write(m + '\n'),
        shouldStop: () => signal !== null,
      });
      ctx.out.write(files.map((f) => `wrote ${f}`).join('\n') + '\n');
      if (signal) process.exitCode = signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
