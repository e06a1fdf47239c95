import type { CommandModule } from 'yargs';
import { defaultContext } from './context';
import { UserError } from '../errors';

interface LsArgs {
  dir: string;
  sort: 'started' | 'name' | 'clean' | 'robust';
  json: boolean;
  debug: boolean;
}
interface DiffArgs {
  runs: string[];
  md: boolean;
  json: boolean;
  debug: boolean;
}

const lsCommand: CommandModule<object, LsArgs> = {
  command: 'ls [dir]',
  describe: 'one line per run: status (running, failed, imported, finished, interrupted), epoch, clean and robust accuracy of the newest evaluation, training time, start',
  builder: (y) =>
    y
      .positional('dir', { type: 'string', default: 'runs', describe: 'a runs folder, runs/<name>, or one run directory' })
      .option('sort', { choices: ['started', 'name', 'clean', 'robust'] as const, default: 'started' as const, describe: 'started: oldest first; clean, robust: best first' })
      .option('json', { type: 'boolean', default: false, describe: 'one JSON array (every field, per-attack accuracies included)' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { listRuns, formatRunList } = await import('../report/runs-list');
    const runs = listRuns(args.dir, args.sort);
    ctx.out.write(args.json ? JSON.stringify(runs, null, 2) + '\n' : formatRunList(runs));
  },
};

const diffCommand: CommandModule<object, DiffArgs> = {
  command: 'diff <runs..>',
  describe: 'compare runs side by side: differing config keys, final metrics, newest evaluations',
  builder: (y) =>
    y
      .positional('runs', { type: 'string', array: true, describe: 'two or more run directories' })
      .option('md', { type: 'boolean', default: false, describe: 'Markdown tables' })
      .option('json', { type: 'boolean', default: false, describe: 'JSON' })
      .check((a) => {
        if (a.md && a.json) throw new UserError('give --md or --json, not both');
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { diffRuns, formatDiff, diffMarkdown } = await import('../report/runs-diff');
    const d = diffRuns(args.runs);
    ctx.out.write(args.json ? JSON.stringify(d, null, 2) + '\n' : args.md ? diffMarkdown(d) : formatDiff(d));
  },
};

export const runsCommand: CommandModule = {
  command: 'runs <command>',
  describe: 'runs at a glance (ls) and side by side (diff)',
  builder: (y) => y.command(lsCommand).command(diffCommand).demandCommand(1),
  handler: () => undefined,
};
