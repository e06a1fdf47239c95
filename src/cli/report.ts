import type { CommandModule } from 'yargs';
import { defaultContext } from './context';

interface ReportArgs {
  runs: string[];
  out?: string;
  eval?: string;
  layout: 'main' | 'ablation' | 'all';
  title?: string;
  columns?: string;
  eps?: string;
  'include-probes': boolean;
  debug: boolean;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <runs..>',
  describe: 'aggregate evaluated runs (mean ± std over seeds) into paper-style tables: Markdown, LaTeX, CSV, JSON',
  builder: (y) =>
    y
      .positional('runs', { type: 'string', array: true, describe: 'run directories, or folders holding them (e.g. runs/)' })
      .option('out', { type: 'string', describe: 'output folder (default reports/<time>)' })
      .option('eval', { type: 'string', describe: 'evaluation report to use in every run (file name in eval/); default: the newest with the most table columns' })
      .option('layout', { choices: ['main', 'ablation', 'all'] as const, default: 'main' as const, describe: 'main: Tables 1-2 columns; ablation: Table 4; all: every attack' })
      .option('title', { type: 'string', describe: 'table caption' })
      .option('columns', { type: 'string', describe: 'columns instead of the layout\'s: natural, worst_case, diagnostics, attacks, attack:param=value (e.g. pgd:steps=50)' })
      .option('eps', { type: 'string', describe: "rows at this ε (8/255, 0.03) or 'all'; default: each run's own eval.eps" })
      .option('include-probes', { type: 'boolean', default: false, describe: 'also list layer-probe candidates (normally only in the probe table)' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { writeReport } = await import('../report/report');
    const { parseEps } = await import('./eval');
    const eps = args.eps === undefined ? undefined : args.eps === 'all' ? ('all' as const) : parseEps(args.eps);
    const columns = args.columns?.split(',').map((c) => c.trim()).filter(Boolean);
    const { table, files } = writeReport({ paths: args.runs, layout: args.layout, evalChoice: args.eval, outDir: args.out, title: args.title, columns, eps, includeProbes: args['include-probes'] });
    ctx.err.write(`${table.runs.length} run(s) in ${table.rows.length} row(s)\n`);
    ctx.out.write(files.map((f) => `wrote ${f}`).join('\n') + '\n');
  },
};
