import type { CommandModule } from 'yargs';
import { defaultContext, stopSignals } from './context';
import { epsilon, MAX_SEED } from '../config/schema';
import { UserError } from '../errors';

interface EvalArgs {
  run: string;
  checkpoint?: string;
  attacks?: string | string[];
  eps?: string;
  steps?: number;
  n?: number;
  'batch-size'?: number;
  seed?: number;
  param: string[];
  fresh: boolean;
  surrogate?: string;
  diagnose?: boolean;
  'diagnose-n'?: number;
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
export function checkCount(value: number | undefined, flag: string, min = 1, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isSafeInteger(value) || value < min) throw new UserError(`expected a whole number ≥ ${min}, found ${value}`, undefined, flag);
  if (value > max) throw new UserError(`expected a whole number in ${min}..${max}, found ${value}`, undefined, flag);
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

/**
 * `--param` values through each attack's own schema, before anything loads: the same bounds as
 * the config's eval.params (and, for ε, as `--eps`), with errors naming the flag.
 */
export async function checkParamsOption(params: Record<string, Record<string, unknown>>): Promise<void> {
  const { getAttack } = await import('../attacks/registry');
  const { parseAttackParams } = await import('../attacks/params');
  for (const [name, values] of Object.entries(params)) {
    try {
      const attack = getAttack(name);
      parseAttackParams(attack.name, attack.paramsSchema, values);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(err.detail.replace(/^attack parameter [^:]+: /, ''), undefined, `--param ${err.where ?? name}`);
      throw err;
    }
  }
}

export const evalCommand: CommandModule<object, EvalArgs> = {
  command: 'eval',
  describe: "evaluate a trained run: clean accuracy and robust accuracy under attacks (defaults: the run's own eval settings)",
  builder: (y) =>
    y
      .option('run', { type: 'string', demandOption: true, describe: 'run directory (runs/<name>/<time>)' })
      .option('checkpoint', { type: 'string', describe: "last | best | path to a checkpoint sidecar (.json); default: the run's eval.checkpoint" })
      .option('attacks', { type: 'string', describe: "comma-separated attack names; default: the run's eval.attacks" })
      .option('eps', { type: 'string', describe: "L∞ budget, a number or a fraction like 8/255; default: the run's eval.eps" })
      .option('steps', { type: 'number', describe: "iterations for iterative attacks; default: the run's eval.steps, else each attack's own" })
      .option('n', { type: 'number', describe: "number of test examples; default: the run's eval.n, else all" })
      .option('batch-size', { type: 'number', describe: "default: the run's eval.batchSize" })
      .option('seed', { type: 'number', describe: "seed of the attacks' randomness; default: the run's eval.seed" })
      .option('param', { type: 'string', array: true, default: [], describe: 'attack parameter override: --param cw.c=1 --param pgd.restarts=5 (adds to eval.params)' })
      .option('surrogate', { type: 'string', describe: "run directory of an independently trained model (transfer attacks craft on it; the diagnostics' transfer check too), or none; for the diagnostics' transfer check with --diagnose the default is auto (the run's recipe without the defence, trained on demand and reused); when the diagnostics start by themselves, none" })
      .option('diagnose', { type: 'boolean', describe: 'run the gradient-masking diagnostics after the attacks (default: when a model trained without adversarial examples keeps > 5 % under PGD; --no-diagnose never)' })
      .option('diagnose-n', { type: 'number', describe: 'test examples the diagnostics check (default: min(n, 500))' })
      .option('fresh', { type: 'boolean', default: false, describe: 'compute again even if an identical evaluation exists' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    // Arguments first: a typo should not wait for a dataset to load.
    const eps = args.eps === undefined ? undefined : parseEps(args.eps);
    const attacks = args.attacks === undefined ? undefined : await parseAttacksOption(args.attacks);
    checkCount(args.n, '--n');
    checkCount(args.steps, '--steps');
    checkCount(args['batch-size'], '--batch-size');
    // The RNG takes 32-bit seeds: a larger one would repeat a smaller one's evaluation.
    checkCount(args.seed, '--seed', 0, MAX_SEED);
    checkCount(args['diagnose-n'], '--diagnose-n');
    const params = parseParams(args.param);
    await checkParamsOption(params);
    const { openRun } = await import('../jobs/open-run');
    const { evaluate, evalRequestFromConfig } = await import('../jobs/eval');
    const { openSurrogate } = await import('../jobs/surrogate');
    const { evalProgress } = await import('./progress');
    const run = await openRun({ kind: 'existing', runDir: args.run, checkpoint: 'none' }, { onNote: (m) => ctx.err.write(m + '\n') });
    let surrogate: Awaited<ReturnType<typeof openRun>> | null = null;
    const stop = stopSignals(ctx, { onFirst: 'finishing the current attack iteration and saving the evaluation state' });
    try {
      const req = evalRequestFromConfig(run.cfg, { checkpoint: args.checkpoint, attacks, eps, steps: args.steps, n: args.n, batchSize: args['batch-size'], seed: args.seed, params });
      // Transfer attacks need the same inputs and classes; the diagnostics' transfer check also the same architecture.
      if (args.surrogate && args.surrogate !== 'none' && args.surrogate !== 'auto') {
        surrogate = await openSurrogate(args.surrogate, run, { sameArchitecture: args.diagnose === true });
      }
      const out = await evaluate(run, req, { progress: evalProgress(ctx), shouldStop: stop.requested, fresh: args.fresh, surrogate: surrogate?.target() });
      if (out.interrupted) {
        process.exitCode = stop.exitCode();
        return;
      }
      const { diagnoseAfterEvaluation } = await import('./diagnose');
      const code = await diagnoseAfterEvaluation(ctx, run, req, out, {
        flag: args.diagnose,
        n: args['diagnose-n'],
        surrogate: args.surrogate,
        openSurrogate: surrogate,
        stop,
      });
      if (code !== null) process.exitCode = code;
    } finally {
      stop.dispose();
      surrogate?.dispose();
      run.dispose();
    }
  },
};
