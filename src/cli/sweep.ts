import * as fs from 'fs';
import type { CommandModule } from 'yargs';
import { defaultContext, stopSignals, type CliContext } from './context';
import { EXIT, UserError } from '../errors';
import type { SweepCounts, SweepProgress } from '../jobs/sweep/sweep';

interface SweepArgs {
  args: string[];
  config?: string;
  executor?: 'local' | 'slurm';
  jobs?: number;
  'dry-run': boolean;
  fresh: boolean;
  cell?: number;
  debug: boolean;
}

function duration(s: number): string {
  if (s < 90) return `${s.toFixed(0)} s`;
  if (s < 5400) return `${(s / 60).toFixed(0)} min`;
  return `${(s / 3600).toFixed(1)} h`;
}

function countsLine(c: SweepCounts): string {
  return `${c.done}/${c.total} done, ${c.running} running, ${c.failed} failed` + (c.etaSeconds !== null && c.done < c.total ? `, ETA ${duration(c.etaSeconds)}` : '');
}

/** One display for the whole sweep: a line per cell event, and on a TTY a status line kept up to date. */
function sweepProgress(ctx: CliContext): SweepProgress & { stop(): void } {
  let status = '';
  const clear = () => {
    if (ctx.interactive && status) ctx.err.write('\r\x1b[K');
  };
  const say = (line: string) => {
    clear();
    ctx.err.write(line + '\n');
    if (ctx.interactive && status) ctx.err.write(status);
  };
  return {
    onStart(info) {
      const done = info.cells.filter((c) => c.status === 'done').length;
      say(
        `sweep dir: ${info.sweepDir}\n${info.cells.length} cells` +
          (info.resumed ? `; continuing (${done} done)` : '') +
          `; ${info.jobs} worker${info.jobs > 1 ? 's' : ''} × ${info.threads} native thread${info.threads > 1 ? 's' : ''}`,
      );
    },
    onCellStart(c, attempt) {
      say(`[${c.index}] ${c.name}: ${attempt > 1 ? `retry ${attempt - 1}` : c.attempts > 0 ? 'resuming' : 'starting'}`);
    },
    onCellEnd(c, outcome, seconds, counts) {
      const shown = outcome === 'interrupted' ? { ...counts, etaSeconds: null } : counts;
      say(`[${c.index}] ${c.name}: ${outcome === 'retry' ? 'failed, will retry' : outcome} after ${duration(seconds)} | ${countsLine(shown)}`);
    },
    onTick(counts) {
      if (!ctx.interactive) return;
      status = `sweep: ${countsLine(counts)}`;
      ctx.err.write('\r\x1b[K' + status);
    },
    onNote(m) {
      say(m);
    },
    stop() {
      clear();
      status = '';
    },
  };
}

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep [args..]',
  describe: 'run a grid of experiment configs (axes × seeds) locally on a worker pool or as a Slurm job array; `sweep status DIR` shows per-cell state',
  builder: (y) =>
    y
      .positional('args', { type: 'string', array: true, describe: '`status SWEEP_DIR`' })
      .option('config', { alias: 'c', type: 'string', describe: 'sweep file (YAML): base config, axes, exclude/include, eval, diagnose, slurm' })
      .option('executor', { choices: ['local', 'slurm'] as const, describe: "where the cells run (default: the sweep file's executor, local)" })
      .option('jobs', { type: 'number', describe: 'local worker processes (default: one per core, each with floor(cores / N) native threads)' })
      .option('dry-run', { type: 'boolean', default: false, describe: 'print the cells (and, for Slurm, write and print the sbatch script) without running anything' })
      .option('fresh', { type: 'boolean', default: false, describe: 'start a new sweep even if an unfinished one of the same grid exists' })
      .option('cell', { type: 'number', hidden: true, describe: 'run one cell of SWEEP_DIR (what workers and Slurm array tasks run)' })
      .check((a) => {
        const pos = a.args ?? [];
        if (a.cell !== undefined) {
          if (!(Number.isInteger(a.cell) && a.cell >= 0)) throw new UserError(`--cell must be a cell index (0, 1, …), found ${a.cell}`);
          if (pos.length !== 1) throw new UserError('--cell INDEX needs the sweep directory: ibrar sweep --cell INDEX SWEEP_DIR');
          return true;
        }
        if (pos[0] === 'status') {
          if (pos.length !== 2) throw new UserError('usage: ibrar sweep status SWEEP_DIR');
          return true;
        }
        if (pos.length) throw new UserError(`unexpected argument '${pos[0]}' (did you mean \`ibrar sweep status ${pos[0]}\`?)`);
        if (!a.config) throw new UserError('sweep needs --config SWEEP_FILE (or `ibrar sweep status SWEEP_DIR`)');
        if (a.jobs !== undefined && !(Number.isInteger(a.jobs) && a.jobs >= 1)) throw new UserError(`--jobs must be a positive integer, found ${a.jobs}`);
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const pos = args.args ?? [];
    if (args.cell !== undefined) return runOneCell(ctx, pos[0], args.cell);
    if (pos[0] === 'status') return showStatus(ctx, pos[1]);
    const { loadSweepFile } = await import('../jobs/sweep/grid');
    const { planSweep, openSweep } = await import('../jobs/sweep/sweep');
    const { planTable } = await import('../report/sweep-table');
    const loaded = loadSweepFile(args.config!);
    const plan = planSweep(loaded, { executor: args.executor, jobs: args.jobs });
    const { grid } = plan;
    const axes = Object.keys(loaded.sweep.axes);
    const plural = (n: number, w: string) => `${n} ${w}${n > 1 ? 's' : ''}`;
    const what =
      `sweep ${loaded.name}: ${plural(grid.cells.length, 'cell')}` +
      (axes.length ? ` (${axes.map((a) => `${a}: ${loaded.sweep.axes[a].length}`).join(' × ')}` + (loaded.sweep.exclude.length || loaded.sweep.include.length ? `, ${loaded.sweep.exclude.length} exclude / ${loaded.sweep.include.length} include rules` : '') + ')' : '');
    // A continued sweep keeps the thread count its cells recorded.
    const headFor = (threads: number, jobs: number) =>
      what +
      (plan.executor === 'local'
        ? `; local: ${plural(jobs, 'worker')} × ${plural(threads, 'native thread')} on ${plan.cores} cores`
        : `; slurm: ${plural(threads, 'native thread')} per cell`);
    const head = headFor(plan.threads, plan.jobs);
    for (const n of grid.notes) ctx.err.write(`note: ${n}\n`);
    if (args['dry-run'] && plan.executor === 'local') {
      ctx.out.write(`${head}\n\n${planTable(grid.cells, grid.columns)}\n\n(dry run: nothing was written)\n`);
      return;
    }
    const { sweepDir, state, resumed } = openSweep(loaded, plan, { fresh: args.fresh });
    const pending = state.cells.filter((c) => c.status !== 'done').length;
    const jobs = args.jobs ?? Math.max(1, Math.min(pending || 1, Math.floor(plan.cores / state.threads)));
    if (plan.executor === 'slurm') {
      if (args['dry-run']) ctx.err.write(`${planTable(grid.cells, grid.columns)}\n\n`);
      return slurmSweep(ctx, { sweepDir, state, resumed, loaded, head: headFor(state.threads, 1), dryRun: args['dry-run'] });
    }
    const { runLocalSweep, aggregateSweep } = await import('../jobs/sweep/sweep');
    const { statusTable } = await import('../report/sweep-table');
    const { sweepStatus } = await import('../jobs/sweep/slurm');
    ctx.err.write(headFor(state.threads, jobs) + '\n');
    const stop = stopSignals(ctx, {
      onFirst: 'asking the workers to checkpoint and stop; run the same command again to continue',
      onSecond: 'exiting now; finished cells and checkpoints are kept',
    });
    const progress = sweepProgress(ctx);
    try {
      const out = await runLocalSweep(sweepDir, { jobs, cores: plan.cores, resumed, progress, shouldStop: stop.requested });
      progress.stop();
      if (resumed && out.ran === 0 && out.state.complete) ctx.err.write('every cell of this sweep was already done (--fresh starts a new one)\n');
      const st = await sweepStatus(sweepDir);
      ctx.out.write('\n' + statusTable(st.rows) + '\n');
      if (out.state.complete) {
        const files = aggregateSweep(sweepDir, (m) => ctx.err.write(m + '\n'));
        ctx.out.write(files.map((f) => `wrote ${f}`).join('\n') + (files.length ? '\n' : ''));
      }
      if (out.interrupted) {
        ctx.err.write(`interrupted; continue with the same command (sweep dir ${sweepDir})\n`);
        process.exitCode = stop.exitCode();
      } else if (out.failed.length) {
        ctx.err.write(`${out.failed.length} cell(s) failed after ${out.state.retries} retr${out.state.retries === 1 ? 'y' : 'ies'}: ${out.failed.join(', ')}; run the same command again to retry them\n`);
        process.exitCode = EXIT.internal;
      }
    } finally {
      progress.stop();
      stop.dispose();
    }
  },
};

async function runOneCell(ctx: CliContext, sweepDir: string, index: number): Promise<void> {
  const { exitWithParent } = await import('../jobs/pool');
  exitWithParent();
  // Under the local pool, Ctrl-C reaches the worker and then the driver's SIGTERM: the driver
  // decides when to give up, so a repeat must not cut the checkpoint short.
  const underPool = typeof process.send === 'function';
  const stop = stopSignals(ctx, { onFirst: 'stopping after the current step (checkpoint written)', ignoreRepeats: underPool });
  const { trainProgress, evalProgress } = await import('./progress');
  const progress = trainProgress({ ...ctx, interactive: false });
  try {
    const { runCell } = await import('../jobs/sweep/cell');
    const outcome = await runCell(sweepDir, index, { shouldStop: stop.requested, progress, evalProgress: evalProgress({ ...ctx, interactive: false }), onNote: (m) => ctx.err.write(m + '\n') });
    ctx.err.write(`cell ${index}: ${outcome}\n`);
    process.exitCode = outcome === 'done' ? EXIT.ok : stop.exitCode();
  } finally {
    progress.stop();
    stop.dispose();
  }
}

async function showStatus(ctx: CliContext, sweepDir: string): Promise<void> {
  if (!fs.existsSync(sweepDir)) throw new UserError('no such sweep directory', sweepDir);
  const { sweepStatus } = await import('../jobs/sweep/slurm');
  const { statusTable } = await import('../report/sweep-table');
  const st = await sweepStatus(sweepDir);
  const done = st.rows.filter((r) => r.state === 'done').length;
  const lines = [`sweep ${st.state.name} (${st.state.executor}, ${st.state.threads} native thread${st.state.threads > 1 ? 's' : ''} per cell): ${done}/${st.rows.length} cells done`];
  if (st.submission) lines.push(`job array ${st.submission.arrayJobId} (cells ${st.submission.array}), aggregation job ${st.submission.reportJobId}${st.reportJob ? `: ${st.reportJob}` : ''}`);
  ctx.out.write(`${lines.join('\n')}\n\n${statusTable(st.rows)}\n`);
  for (const n of st.notes) ctx.err.write(`note: ${n}\n`);
}

async function slurmSweep(
  ctx: CliContext,
  o: { sweepDir: string; state: import('../runs/sweep-files').SweepState; resumed: boolean; loaded: import('../jobs/sweep/grid').LoadedSweep; head: string; dryRun: boolean },
): Promise<void> {
  const { writeSlurmScripts, submitSweep, cellsScript } = await import('../jobs/sweep/slurm');
  const slurm = o.loaded.sweep.slurm;
  const todo = o.state.cells.filter((c) => c.status !== 'done').map((c) => c.index);
  ctx.err.write(`${o.head}\nsweep dir: ${o.sweepDir}${o.resumed ? ` (continuing: ${o.state.cells.length - todo.length} cells done)` : ''}\n`);
  if (todo.length === 0) {
    ctx.err.write('every cell of this sweep is done; `ibrar report` it, or use --fresh to start a new one\n');
    return;
  }
  const opts = { sweepDir: o.sweepDir, state: o.state, slurm, cells: todo };
  if (o.dryRun) {
    const files = writeSlurmScripts(opts);
    ctx.out.write(cellsScript(opts));
    ctx.err.write(`wrote ${files.cellsScript} and ${files.reportScript} (dry run: not submitted; run the same command without --dry-run to submit)\n`);
    return;
  }
  const sub = await submitSweep(opts);
  ctx.out.write(`submitted job array ${sub.arrayJobId} (cells ${sub.array}) and aggregation job ${sub.reportJobId} (afterany:${sub.arrayJobId})\n`);
  ctx.err.write(`follow it with: ibrar sweep status ${o.sweepDir}\n`);
}
