import * as fs from 'fs';
import type { CommandModule } from 'yargs';
import { defaultContext, stopSignals, type CliContext } from './context';
import { EXIT, UserError } from '../errors';
import type { ProbeProgress } from '../jobs/probe/probe';

interface ProbeArgs {
  config?: string;
  set: string[];
  layers?: string;
  jobs: number;
  resume?: string;
  fresh: boolean;
  backend?: string;
  worker?: string;
  candidate?: string;
  debug: boolean;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${(100 * v).toFixed(2)}%`);

function probeProgress(ctx: CliContext, jobs: number): ProbeProgress {
  return {
    onStart(info) {
      const done = info.candidates.filter((c) => c.status === 'done').length;
      ctx.err.write(
        `probe dir: ${info.probeDir}\n${info.candidates.length} candidates: ${info.candidates.map((c) => c.id).join(', ')}` +
          (info.resumed ? `; continuing (${done} done)` : '') +
          (jobs > 1 ? `; ${jobs} worker processes` : '') +
          '\n',
      );
    },
    onCandidateStart(c, i, total) {
      ctx.err.write(`[${i}/${total}] ${c.label}: ${c.runDir ? 'resuming' : 'training'}\n`);
    },
    onCandidateEnd(c, outcome) {
      if (outcome === 'done') ctx.err.write(`${c.label}: clean ${pct(c.clean_acc)}, adversarial ${pct(c.adv_acc)}\n`);
      else ctx.err.write(`${c.label}: ${outcome}${c.error ? ` (${c.error})` : ''}\n`);
    },
    onNote(message) {
      ctx.err.write(message + '\n');
    },
  };
}

export const probeCommand: CommandModule<object, ProbeArgs> = {
  command: 'probe-layers',
  describe: 'find robust layers (paper Table 3): train one model per candidate IB layer, compare adversarial accuracy with CE',
  builder: (y) =>
    y
      .option('config', { alias: 'c', type: 'string', describe: 'experiment config (YAML); its ib/probe/eval sections set α, β, attack and margin' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a config key: --set train.epochs=2' })
      .option('layers', { type: 'string', describe: 'comma-separated taps to probe one by one (default: every tap)' })
      .option('jobs', { type: 'number', default: 1, describe: 'candidates trained at once, in worker processes when > 1' })
      .option('resume', { type: 'string', describe: 'continue this probe directory (default: the newest unfinished one with the same config)' })
      .option('fresh', { type: 'boolean', default: false, describe: 'start a new probe even if an unfinished one exists' })
      .option('backend', { type: 'string', describe: 'auto|tensorflow|webgpu|wasm|cpu (same as --set backend=…)' })
      .option('worker', { type: 'string', hidden: true })
      .option('candidate', { type: 'string', hidden: true })
      .check((a) => {
        if (a.worker) {
          if (!a.candidate) throw new UserError('--worker needs --candidate');
          return true;
        }
        if (!a.config && !a.resume) throw new UserError('probe-layers needs --config FILE or --resume PROBE_DIR');
        if (!(Number.isInteger(a.jobs) && a.jobs >= 1)) throw new UserError(`--jobs must be a positive integer, found ${a.jobs}`);
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    if (args.worker) {
      const { exitWithParent } = await import('../jobs/pool');
      exitWithParent();
      const stop = stopSignals(ctx, { onFirst: 'stopping after the current step', ignoreRepeats: true });
      try {
        const { runCandidate } = await import('../jobs/probe/worker');
        const { trainProgress } = await import('./progress');
        const progress = trainProgress({ ...ctx, interactive: false });
        const outcome = await runCandidate(args.worker, args.candidate!, { shouldStop: stop.requested, progress });
        progress.stop();
        process.exitCode = outcome === 'done' ? EXIT.ok : stop.exitCode();
      } finally {
        stop.dispose();
      }
      return;
    }
    const { loadConfig } = await import('../config/load');
    const sets = [...args.set, ...(args.backend ? [`backend=${args.backend}`] : [])];
    if (args.resume && (args.config || sets.length)) throw new UserError('--resume continues a probe with its saved config; drop --config/--set');
    if (args.resume && !fs.existsSync(args.resume)) throw new UserError('no such probe directory', args.resume);
    const cfg = args.config ? loadConfig(args.config, sets) : undefined;
    const layers = args.layers?.split(',').map((s) => s.trim()).filter(Boolean);
    const { runProbe } = await import('../jobs/probe/probe');
    const { trainProgress } = await import('./progress');
    const stop = stopSignals(ctx, {
      onFirst: 'stopping after the current step; run the same command again to continue',
      onSecond: 'exiting now; finished candidates and checkpoints are kept',
    });
    const progress = probeProgress(ctx, args.jobs);
    const tp = trainProgress(ctx);
    progress.train = tp;
    try {
      const out = await runProbe({ cfg, layers, jobs: args.jobs, probeDir: args.resume, fresh: args.fresh, progress, shouldStop: stop.requested });
      tp.stop();
      const { probeMarkdown } = await import('../report/probe-table');
      ctx.out.write('\n' + probeMarkdown(out.result) + '\n' + out.files.map((f) => `wrote ${f}`).join('\n') + '\n');
      if (out.interrupted) {
        ctx.err.write(`interrupted; continue with: npx ibrar probe-layers --resume ${out.probeDir}\n`);
        process.exitCode = stop.exitCode();
      } else if (out.failed.length) {
        ctx.err.write(`${out.failed.length} candidate(s) failed: ${out.failed.join(', ')}; run the same command again to retry them\n`);
        process.exitCode = EXIT.internal;
      }
    } finally {
      stop.dispose();
    }
  },
};
