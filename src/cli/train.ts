import type { CommandModule } from 'yargs';
import { defaultContext, stopSignals } from './context';
import { UserError, EXIT } from '../errors';

interface TrainArgs {
  config?: string;
  set: string[];
  resume?: string;
  'init-from'?: string;
  force: boolean;
  'print-config': boolean;
  'dry-run': boolean;
  backend?: string;
  diagnose?: boolean;
  debug: boolean;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'train a model from a YAML experiment config (writes runs/<name>/<time>/), then run its evaluation',
  builder: (y) =>
    y
      .option('config', { alias: 'c', type: 'string', describe: 'experiment config (YAML)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a config key: --set train.epochs=2' })
      .option('resume', { type: 'string', describe: 'continue the run in this directory from its newest checkpoint' })
      .option('init-from', { type: 'string', describe: 'fine-tune: start from the weights of this run\'s last checkpoint (or a sidecar: RUN/checkpoints/best.json); same as --set train.initFrom=…' })
      .option('force', { type: 'boolean', default: false, describe: 'with --resume: continue although config.yaml changed since the checkpoint (recorded in the run)' })
      .option('print-config', { type: 'boolean', default: false, describe: 'print the resolved config and exit' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'time a few steps and print the number of steps and the estimated training time here; writes nothing' })
      .option('backend', { type: 'string', describe: 'auto|tensorflow|webgpu|wasm|cpu (same as --set backend=…)' })
      .option('diagnose', { type: 'boolean', describe: 'after the evaluation, run the gradient-masking diagnostics (default: when indicated; --no-diagnose never)' })
      .check((a) => {
        if (!a.config && !a.resume) throw new UserError('train needs --config FILE or --resume RUN_DIR');
        if (a.config && a.resume) throw new UserError('give either --config or --resume, not both (a resumed run uses its saved config)');
        if (a.resume && a.set.length) throw new UserError('--set does not apply to --resume (a resumed run uses its saved config)', undefined, '--set');
        if (a.resume && a['init-from']) throw new UserError('--init-from starts a new run; a resumed run continues from its own checkpoint', undefined, '--init-from');
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { loadConfig, configToYaml } = await import('../config/load');
    const sets = [...args.set, ...(args.backend ? [`backend=${args.backend}`] : [])];
    let cfg = args.config ? loadConfig(args.config, sets) : undefined;
    if (cfg && args['init-from'] !== undefined) {
      const { resolveInitFromPath } = await import('../jobs/import');
      cfg = { ...cfg, train: { ...cfg.train, initFrom: resolveInitFromPath(args['init-from']) } };
    }
    if (args['print-config']) {
      if (!cfg) throw new UserError('--print-config needs --config');
      ctx.out.write(configToYaml(cfg));
      return;
    }
    if (args['dry-run']) {
      if (!cfg) throw new UserError('--dry-run needs --config');
      const { estimateTraining } = await import('../jobs/train');
      const e = await estimateTraining(cfg, { onNote: (m) => ctx.err.write(m + '\n') });
      ctx.out.write(formatEstimate(cfg, e));
      return;
    }
    const { train } = await import('../jobs/train');
    const { trainProgress, evalProgress } = await import('./progress');
    const stop = stopSignals(ctx, { onFirst: 'finishing the current step and writing a checkpoint (an evaluation: the current attack iteration, then its state)' });
    const progress = trainProgress(ctx);
    try {
      const res = await train({
        cfg,
        configFile: args.config,
        resumeDir: args.resume,
        force: args.force,
        progress,
        // Re-running `train --config` would start a new run: point at --resume, which skips the
        // finished training and continues the evaluation from its state file.
        evalProgress: evalProgress(ctx, { afterTraining: true }),
        shouldStop: stop.requested,
      });
      if (res.interrupted) {
        process.exitCode = stop.exitCode();
        return;
      }
      const last = res.records[res.records.length - 1];
      if (!res.alreadyFinished) {
        ctx.err.write(`done: ${res.runDir}` + (last ? ` (test_acc ${last.test_acc.toFixed(4)}, best ${res.bestTestAcc.toFixed(4)})` : '') + '\n');
      }
      process.exitCode = EXIT.ok;
      const evaluation = res.evaluation;
      if (evaluation?.report && args.diagnose !== false) {
        const { diagnosisIndicated } = await import('../jobs/diagnose');
        const { runLayout } = await import('../runs/run-dir');
        const saved = loadConfig(runLayout(res.runDir).config);
        if (args.diagnose || diagnosisIndicated(saved, evaluation.report)) {
          const { openRun } = await import('../jobs/open-run');
          const { evalRequestFromConfig } = await import('../jobs/eval');
          const { diagnoseAfterEvaluation } = await import('./diagnose');
          const run = await openRun({ kind: 'existing', runDir: res.runDir, checkpoint: saved.eval.checkpoint });
          try {
            const code = await diagnoseAfterEvaluation(ctx, run, evalRequestFromConfig(saved), evaluation, { flag: args.diagnose, stop });
            if (code !== null) process.exitCode = code;
          } finally {
            run.dispose();
          }
        }
      }
    } finally {
      progress.stop();
      stop.dispose();
    }
  },
};

function duration(seconds: number): string {
  if (seconds < 120) return `${seconds.toFixed(0)} s`;
  if (seconds < 7200) return `${(seconds / 60).toFixed(0)} min`;
  if (seconds < 3 * 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

function formatEstimate(cfg: import('../config/schema').ExperimentConfig, e: import('../jobs/train').TrainEstimate): string {
  const b = e.backend;
  const threads = /(\d+) threads?$/.exec(b.native?.runtime ?? '')?.[1];
  const engine = `${b.active}${b.native?.loaded ? ` + native kernels${threads ? ` (${threads} thread${threads === '1' ? '' : 's'})` : ''}` : ''}`;
  return [
    `dry run of ${cfg.name} (nothing written): ${e.stepsPerEpoch} steps/epoch × ${e.epochs} epochs = ${e.totalSteps.toLocaleString('en-US')} steps of ${cfg.train.batchSize}`,
    `${engine}: ${e.secondsPerStep.toFixed(2)} s per step` + (e.secondsPerMaskStep !== null ? `, ${e.secondsPerMaskStep.toFixed(2)} s per channel-mask step` : '') + ` (${e.timedSteps} timed after a warm-up)`,
    `estimated training time on this machine: ${duration(e.estimatedSeconds)}` +
      (cfg.eval.attacks.length ? `, then the evaluation (${cfg.eval.attacks.join(', ')}${cfg.eval.n ? ` on ${cfg.eval.n} test images` : ''})` : ''),
    '',
  ].join('\n');
}
