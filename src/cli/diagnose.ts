// After an evaluation: run the gradient-masking diagnostics when asked, or when the numbers call
// for them (a model trained without adversarial examples keeping > 5 % under PGD), and print
// the verdict. Shared by `ibrar eval` and the evaluation that ends `ibrar train`.
import type { OpenedRun } from '../jobs/open-run';
import type { EvalOutcome, EvalRequest } from '../jobs/eval';
import type { CliContext, StopSignals } from './context';
import { trainProgress } from './progress';

export const DEFAULT_DIAGNOSE_N = 500;

/** Returns an exit code to set (interrupted), else null. */
export async function diagnoseAfterEvaluation(
  ctx: CliContext,
  run: OpenedRun,
  req: EvalRequest,
  out: EvalOutcome,
  opts: { flag?: boolean; n?: number; surrogate?: string; openSurrogate?: OpenedRun | null; stop: StopSignals },
): Promise<number | null> {
  const { diagnose, diagnosisIndicated, resolveSurrogate } = await import('../jobs/diagnose');
  const report = out.report;
  if (!report || opts.flag === false) return null;
  if (opts.flag === undefined) {
    if (!diagnosisIndicated(run.cfg, report)) return null;
    const pgd = report.attacks.find((a) => a.attack === 'pgd')!;
    ctx.err.write(
      `a model trained without adversarial examples keeps ${(100 * pgd.robust_acc).toFixed(2)} % under PGD: running the gradient-masking diagnostics (--no-diagnose skips them)\n`,
    );
  }
  // Training a surrogate costs a training run: only when the diagnostics were asked for.
  const choice = opts.surrogate ?? (opts.flag === true ? 'auto' : 'none');
  if (choice === 'none' && opts.surrogate === undefined) {
    ctx.err.write('(the transfer check needs a surrogate: --surrogate RUN_DIR, or --diagnose to train one on demand)\n');
  }
  const progress = trainProgress(ctx);
  const surrogate = await resolveSurrogate(run, choice, { open: opts.openSurrogate, progress, shouldStop: opts.stop.requested });
  progress.stop();
  if (surrogate === 'interrupted') return opts.stop.exitCode();
  try {
    const n = opts.n ?? Math.min(report.n, DEFAULT_DIAGNOSE_N);
    const res = await diagnose(
      run,
      { eps: req.eps, n, batchSize: req.batchSize, seed: req.seed },
      {
        surrogate,
        evalReportFile: out.files[0],
        shouldStop: opts.stop.requested,
        progress: {
          onStart: (i) => ctx.err.write(`diagnostics on ${i.n} test examples at ε = ${report.eps_str}${i.resumedChecks ? ` (${i.resumedChecks} checks already done)` : ''}\n`),
          onCheck: (c) => ctx.err.write(`  ${c.status === 'warn' ? 'WARN' : c.status} ${c.title}: ${c.summary} (${c.seconds.toFixed(1)} s)\n`),
          onInterrupted: () => ctx.err.write('diagnostics interrupted; run the same command again to continue\n'),
        },
      },
    );
    if (res.interrupted) return opts.stop.exitCode();
    ctx.out.write(`${res.report!.line}\n` + res.files.map((f) => `wrote ${f}`).join('\n') + '\n');
    return null;
  } finally {
    if (surrogate && surrogate.owned) surrogate.run.dispose();
  }
}
