// Human-facing progress: cli-progress bars on a TTY, one summary line per epoch otherwise.
import type { TrainProgress } from '../train/trainer';
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
          (info.startEpoch > 0 ? `; resuming at epoch ${info.startEpoch + 1}` : '') +
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
    onInterrupted(info) {
      stop();
      ctx.err.write(`interrupted: checkpoint written at epoch ${info.epoch}, step ${info.step}. Resume with:\n  npx ibrar train --resume ${info.runDir}\n`);
    },
    stop,
  };
}
