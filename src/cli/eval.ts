import type { CommandModule } from 'yargs';
import { defaultContext, type CliContext } from './context';
import { epsilon } from '../config/schema';
import { EXIT, UserError } from '../errors';
import type { EvalProgress } from '../eval/evaluate';

interface EvalArgs {
  run: string;
  checkpoint: string;
  attacks: string | string[];
  eps: string;
  steps?: number;
  n?: number;
  'batch-size': number;
  seed: number;
  param: string[];
  debug: boolean;
}

/** `--eps 8/255` or `--eps 0.03`. */
export function parseEps(text: string): number {
  // The config schema's ε type, so `--eps` and `eval.eps` accept exactly the same spellings.
  const res = epsilon.safeParse(text);
  if (!res.success) throw new UserError(`expected a number in [0, 1] or a fraction like 8/255, found '${text}'`, undefined, '--eps');
  return res.data;
}

/** A whole-number option such as --n: yargs gives NaN for words and accepts fractions and negatives. */
export function checkCount(value: number | undefined, flag: string, min = 1): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < min) throw new UserError(`expected a whole number ≥ ${min}, found ${value}`, undefined, flag);
  return value;
}

/** `--attacks pgd,cw` (given once or several times) → canonical names, checked against the registry. */
export async function parseAttacksOption(value: string | string[]): Promise<string[]> {
  const list = (Array.isArray(value) ? value : [value]).join(',');
  // Loaded here, not at the top: the registry pulls in TensorFlow.js, which other commands' errors should not wait for.
  const { parseAttackList } = await import('../attacks/registry');
  try {
    return parseAttackList(list);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(err.message, undefined, '--attacks');
    throw err;
  }
}

/** `--param cw.c=1` → {cw: {c: 1}}. */
export function parseParams(items: string[]): Record<string, Record<string, unknown>> {
  const out: Record<string, Record<string, unknown>> = {};
  for (const item of items) {
    const m = /^([a-z0-9-]+)\.([A-Za-z0-9_]+)=(.*)$/.exec(item);
    if (!m) throw new UserError(`expected attack.param=value, found '${item}'`, undefined, '--param');
    const raw = m[3];
    const num = Number(raw);
    (out[m[1]] ??= {})[m[2]] = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(num) ? num : raw;
  }
  return out;
}

export function evalProgress(ctx: CliContext): EvalProgress {
  let last = 0;
  return {
    onStart(info) {
      ctx.err.write(
        `evaluating ${info.n} test examples under ${info.attacks.join(', ')}` +
          (info.resumedBatches ? ` (resuming after ${info.resumedBatches} finished batches)` : '') +
          (info.maskApplied ? '; channel mask applied' : '') +
          '\n',
      );
    },
    onBatch(info) {
      const now = Date.now();
      if (ctx.interactive || now - last > 10_000 || info.done === info.total) {
        last = now;
        const parts = Object.entries(info.perAttack).map(
          ([a, s]) => `${a} ${((100 * s.correct) / Math.max(s.seen, 1)).toFixed(2)}% (${s.seconds > 0 ? (s.seen / s.seconds).toFixed(1) : '-'} img/s)`,
        );
        ctx.err.write(`${ctx.interactive ? '\r' : ''}[${info.done}/${info.total}] ${parts.join(' | ')}${ctx.interactive ? '' : '\n'}`);
      }
    },
    onDone(report, files) {
      if (ctx.interactive) ctx.err.write('\n');
      const pct = (v: number) => (100 * v).toFixed(2) + '%';
      ctx.out.write(
        `clean ${pct(report.clean_acc)} | ` +
          report.attacks.map((a) => `${a.attack} ${pct(a.robust_acc)}`).join(' | ') +
          ` | worst case ${pct(report.worst_case_acc)}\n` +
          files.map((f) => `wrote ${f}`).join('\n') +
          '\n',
      );
    },
    onInterrupted(info) {
      ctx.err.write(`\ninterrupted after ${info.done}/${info.total} examples; run the same command again to continue\n`);
    },
  };
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: 'evaluate a trained run: clean accuracy and robust accuracy under attacks',
  builder: (y) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run directory (runs/<name>/<time>)' })
      .option('checkpoint', { type: 'string', default: 'last', describe: 'last | best | path to a checkpoint sidecar (.json)' })
      .option('attacks', { type: 'string', default: 'pgd,cw,fgsm,fab,nifgsm', describe: 'comma-separated attack names' })
      .option('eps', { type: 'string', default: '0.03', describe: 'L∞ budget, a number or a fraction like 8/255' })
      .option('steps', { type: 'number', describe: 'iterations for iterative attacks (default: each attack’s own)' })
      .option('n', { type: 'number', describe: 'number of test examples (default: all)' })
      .option('batch-size', { type: 'number', default: 200 })
      .option('seed', { type: 'number', default: 0 })
      .option('param', { type: 'string', array: true, default: [], describe: 'attack parameter override: --param cw.c=1 --param pgd.restarts=5' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const eps = parseEps(args.eps);
    const attacks = await parseAttacksOption(args.attacks);
    checkCount(args.n, '--n');
    checkCount(args.steps, '--steps');
    checkCount(args['batch-size'], '--batch-size');
    checkCount(args.seed, '--seed', 0);
    const { evaluateRun } = await import('../eval/evaluate');
    let signal: NodeJS.Signals | null = null;
    const onSignal = (sig: NodeJS.Signals) => {
      if (signal) process.exit(sig === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
      signal = sig;
      ctx.err.write(`\n${sig}: finishing the current batch and saving the evaluation state\n`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      await evaluateRun(
        {
          runDir: args.run,
          checkpoint: args.checkpoint,
          attacks,
          eps,
          steps: args.steps,
          n: args.n,
          batchSize: args['batch-size'],
          seed: args.seed,
          params: parseParams(args.param),
        },
        { progress: evalProgress(ctx), shouldStop: () => signal !== null },
      );
      if (signal) process.exitCode = signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
