import type { CommandModule } from 'yargs';
import { FETCHABLE, MANUAL_DATASETS, VERIFIABLE } from '../data/names';
import { defaultContext } from './context';

interface FetchArgs {
  name: string;
  dir?: string;
  debug: boolean;
}
interface VerifyArgs {
  dataset: string;
  root?: string;
  json: boolean;
  debug: boolean;
}

function defaultRoot(dir?: string): string {
  return dir ?? process.env.IBRAR_DATA ?? 'data';
}

const fetchCommand: CommandModule<object, FetchArgs> = {
  command: 'fetch <name>',
  describe: 'download a dataset and verify it against the official SHA-256 hashes (cifar100, svhn, tiny-imagenet: says where to get the files)',
  builder: (y) =>
    y
      .positional('name', { type: 'string', choices: [...FETCHABLE, ...MANUAL_DATASETS], demandOption: true })
      .option('dir', { type: 'string', describe: 'data root (default: $IBRAR_DATA or ./data)' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { fetchDataset } = await import('../data/fetch');
    const root = defaultRoot(args.dir);
    type Bar = { update(v: number, p?: object): void; stop(): void };
    const state: { bar: Bar | null } = { bar: null };
    let lastPhase = '';
    const res = await fetchDataset(args.name as 'cifar10', root, {
      log: (msg) => ctx.err.write(`${msg}\n`),
      onProgress: (done, total, phase) => {
        if (!ctx.interactive) {
          if (phase !== lastPhase) ctx.err.write(`${phase}…\n`);
          lastPhase = phase;
          return;
        }
        if (phase !== lastPhase) {
          state.bar?.stop();
          // eslint-disable-next-line @typescript-eslint/no-var-requires
          const cliProgress = require('cli-progress') as typeof import('cli-progress');
          const b = new cliProgress.SingleBar({ format: `${phase} {bar} {percentage}% {value}/{total}`, stream: ctx.err as NodeJS.WriteStream }, cliProgress.Presets.shades_classic);
          b.start(total, done);
          state.bar = b;
          lastPhase = phase;
        }
        state.bar?.update(done);
      },
    });
    state.bar?.stop();
    // Said the way `ibrar data verify` says it: official files, or known (derived) ones.
    const verified =
      res.against === 'derived'
        ? ', SHA-256 verified against the known hashes of files derived from another source (not the official release; `ibrar data verify` lists them as derived)'
        : ', SHA-256 verified against the official release';
    ctx.out.write(`${res.files.length} files in ${root}/${args.name}${res.verified ? verified : ''}\n`);
  },
};

const verifyCommand: CommandModule<object, VerifyArgs> = {
  command: 'verify',
  describe: 'check a dataset on disk: counts, shapes, per-class counts and official checksums',
  builder: (y) =>
    y
      .option('dataset', { type: 'string', demandOption: true, choices: VERIFIABLE })
      .option('root', { type: 'string', describe: 'data root (default: $IBRAR_DATA or ./data)' })
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { verifyDataset, formatVerifyReport } = await import('../data/verify');
    const report = await verifyDataset(args.dataset as 'cifar10', defaultRoot(args.root));
    ctx.out.write(args.json ? JSON.stringify(report, null, 2) + '\n' : formatVerifyReport(report) + '\n');
    if (!report.ok) {
      // Problems in the data are bad input (exit 2), reported after the whole report.
      const { UserError } = await import('../errors');
      const mismatches = report.files.filter((f) => f.status === 'mismatch').length;
      const parts = [report.problems.length ? `${report.problems.length} problem${report.problems.length > 1 ? 's' : ''}` : '', mismatches ? `${mismatches} checksum mismatch${mismatches > 1 ? 'es' : ''}` : ''].filter(Boolean);
      throw new UserError(`${args.dataset}: ${parts.join(' and ')} found (see the report above)`, report.dir || report.root);
    }
  },
};

export const dataCommand: CommandModule = {
  command: 'data <command>',
  describe: 'get and check datasets (fetch, verify)',
  builder: (y) => y.command(fetchCommand).command(verifyCommand).demandCommand(1),
  handler: () => undefined,
};
