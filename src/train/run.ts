// `ibrar train` as a process: signals, progress, and the optional evaluation at the end.
import type { ExperimentConfig } from '../config/schema';
import type { CliContext } from '../cli/context';
import { trainProgress } from '../cli/progress';
import { EXIT } from '../errors';
import { train } from './trainer';

export async function runTraining(opts: { cfg?: ExperimentConfig; configFile?: string; resumeDir?: string; ctx: CliContext }): Promise<number> {
  const { ctx } = opts;
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal) {
      ctx.err.write(`\nsecond ${sig}: exiting now; the last complete checkpoint stays loadable\n`);
      process.exit(sig === 'SIGINT' ? EXIT.sigint : EXIT.sigterm);
    }
    signal = sig;
    ctx.err.write(`\n${sig}: finishing the current step and writing a checkpoint (send again to exit at once)\n`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const progress = trainProgress(ctx);
  try {
    const result = await train({ cfg: opts.cfg, configFile: opts.configFile, resumeDir: opts.resumeDir, progress, shouldStop: () => signal !== null });
    if (result.interrupted) return signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
    const last = result.records[result.records.length - 1];
    ctx.err.write(
      `done: ${result.runDir}` + (last ? ` (test_acc ${last.test_acc.toFixed(4)}, best ${result.bestTestAcc.toFixed(4)})` : '') + '\n',
    );
    const { loadConfig } = await import('../config/load');
    const { runLayout } = await import('../runs/run-dir');
    const cfg = loadConfig(runLayout(result.runDir).config);
    if (cfg.eval.attacks.length > 0) {
      const { evaluateRun } = await import('../eval/evaluate');
      const { evalProgress } = await import('../cli/eval');
      await evaluateRun(
        {
          runDir: result.runDir,
          checkpoint: cfg.eval.checkpoint,
          attacks: cfg.eval.attacks,
          eps: cfg.eval.eps,
          steps: cfg.eval.steps,
          n: cfg.eval.n,
          batchSize: cfg.eval.batchSize,
          seed: cfg.seed,
        },
        {
          progress: {
            ...evalProgress(ctx),
            // Re-running `train --config` would start a new run: point at --resume, which
            // skips the finished training and continues the evaluation from its state file.
            onInterrupted: (info) =>
              ctx.err.write(`\ninterrupted after ${info.done}/${info.total} evaluation examples. Continue with:\n  npx ibrar train --resume ${result.runDir}\n`),
          },
          shouldStop: () => signal !== null,
        },
      );
      if (signal) return signal === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint;
    }
    return EXIT.ok;
  } finally {
    progress.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
