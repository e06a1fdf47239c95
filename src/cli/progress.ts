// Human-facing progress: cli-progress bars on a TTY, one summary line per epoch (training) or
// every 10 seconds (evaluation) otherwise.
import type { TrainProgress } from '../jobs/train';
import type { EvalProgress } from '../jobs/eval';
import { formatEps } from '../report/eval-tables';
import type { CliContext } from './context';

function fmt(n: number, digits = 4): string {
  return Number.isFinite(n) ? n.toFixed(digits) : String(n);
}

export function trainProgress(ctx: CliContext): TrainProgress & { stop(): void } {
  // cli-progress is loaded only when drawing bars.
  let bar: { start(total: number, value: number, payload: object): void; update(v: number, p: object): void; stop(): void } | null = null;
  let epochs = 0;
  const stop = () => {
    bar?.stop();
    bar = null;
  };
  return {
    onStart(info) {
      epochs = info.epochs;
      ctx.err.write(
        `run dir: ${info.runDir}\nbackend: ${info.backend.active} (${info.backend.provider})` +
          (info.backend.native
            ? info.backend.native.loaded
              ? `, native oneDNN kernels`
              : `, wasm kernels (native kernels not loaded: ${info.backend.native.reason ?? 'unknown'})`
            : '') +
          `; ${info.stepsPerEpoch} steps/epoch` +
          (info.startEpoch > 0 || info.startStep > 0 ? `; resuming at epoch ${info.startEpoch + 1}${info.startStep > 0 ? `, step ${info.startStep + 1}` : ''}` : '') +
          '\n',
      );
    },
    onEpochStart(epoch, steps, startStep) {
      if (!ctx.interactive) return;
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      const cliProgress = require('cli-progress') as typeof import('cli-progress');
      bar = new cliProgress.SingleBar(
        {
          format: `epoch ${epoch}/${epochs} {bar} {value}/{total} | loss {loss} | acc {acc} | {ips} img/s | ETA {eta_formatted}`,
          stream: ctx.err as NodeJS.WriteStream,
          hideCursor: true,
          etaBuffer: 20,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(steps, startStep, { loss: '-', acc: '-', ips: '-' });
    },
    onStep(info) {
      bar?.update(info.step, { loss: fmt(info.loss), acc: fmt(info.acc, 3), ips: info.imagesPerSec.toFixed(0) });
    },
    onEpochEnd(r) {
      stop();
      const extra = ['ce', 'ib'].filter((k) => k in r).map((k) => ` ${k} ${fmt(r[k])}`).join('');
      ctx.err.write(
        `epoch ${r.epoch}/${epochs} loss ${fmt(r.train_loss)}${extra} train_acc ${fmt(r.train_acc)} test_acc ${fmt(r.test_acc)} ` +
          `lr ${r.lr.toPrecision(3)} ${r.seconds.toFixed(1)}s ${r.images_per_sec.toFixed(0)} img/s\n`,
      );
    },
    onNote(message) {
      ctx.err.write(message + '\n');
    },
    onFinished(info) {
      ctx.err.write(`run ${info.runDir} has finished training (${info.epochs}/${info.epochs} epochs)\n`);
    },
    onInterrupted(info) {
      stop();
      ctx.err.write(`interrupted: checkpoint written at epoch ${info.epoch}, step ${info.step}. Resume with:\n  npx ibrar train --resume ${info.runDir}\n`);
    },
    stop,
  };
}

/** `afterTraining`: an interrupted end-of-training evaluation is continued by `train --resume`. */
export function evalProgress(ctx: CliContext, opts: { afterTraining?: boolean } = {}): EvalProgress {
  let last = 0;
  return {
    onStart(info) {
      ctx.err.write(
        `evaluating ${info.n} test examples at ε = ${formatEps(info.eps)} under ${info.attacks.join(', ')}` +
          (info.resumed ? ` (resuming after ${info.resumedBatches} finished batches)` : '') +
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
    onDone(report, files, reused) {
      if (ctx.interactive && !reused) ctx.err.write('\n');
      const pct = (v: number) => (100 * v).toFixed(2) + '%';
      ctx.out.write(
        (reused ? `already evaluated with these settings (${files[0]}):\n` : '') +
          `clean ${pct(report.clean_acc)} | ` +
          report.attacks.map((a) => `${a.attack} ${pct(a.robust_acc)}`).join(' | ') +
          ` | worst case ${pct(report.worst_case_acc)} (ε = ${report.eps_str}, n = ${report.n})\n` +
          (reused ? '' : files.map((f) => `wrote ${f}`).join('\n') + '\n'),
      );
    },
    onInterrupted(info) {
      ctx.err.write(
        opts.afterTraining
          ? `\ninterrupted after ${info.done}/${info.total} evaluation examples. Continue with:\n  npx ibrar train --resume ${info.runDir}\n`
          : `\ninterrupted after ${info.done}/${info.total} examples; run the same command again to continue\n`,
      );
    },
    onNote(message) {
      ctx.err.write(message + '\n');
    },
  };
}
