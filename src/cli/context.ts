// What every command handler gets: output streams and flags, no globals, so handlers can be
// called from tests without a process; and the one place where SIGINT/SIGTERM become a stop
// request that jobs poll.
import { EXIT } from '../errors';

export interface CliContext {
  out: NodeJS.WritableStream;
  err: NodeJS.WritableStream;
  debug: boolean;
  /** Whether to draw progress bars (a TTY) or print one summary line per epoch/attack. */
  interactive: boolean;
}

export function defaultContext(debug = false): CliContext {
  return { out: process.stdout, err: process.stderr, debug, interactive: Boolean(process.stderr.isTTY) && !process.env.CI };
}

export interface StopSignals {
  /** Polled by jobs between steps, batches and attack iterations. */
  requested(): boolean;
  signal(): NodeJS.Signals | null;
  /** 130 after SIGINT, 143 after SIGTERM. */
  exitCode(): number;
  dispose(): void;
}

export interface StopSignalOptions {
  /** Printed on the first signal: what the job does before it stops. */
  onFirst: string;
  /** Printed before exiting on a second signal (default: a generic line). */
  onSecond?: string;
  /** Worker processes ignore repeats: their parent decides when to give up. */
  ignoreRepeats?: boolean;
}

/**
 * The first SIGINT/SIGTERM asks the job to stop at its next safe point (it writes its state and
 * returns); a second one exits at once, which is safe because every file is written atomically.
 */
export function stopSignals(ctx: CliContext, opts: StopSignalOptions): StopSignals {
  let signal: NodeJS.Signals | null = null;
  const code = (sig: NodeJS.Signals | null) => (sig === 'SIGTERM' ? EXIT.sigterm : EXIT.sigint);
  const on = (sig: NodeJS.Signals) => {
    if (signal) {
      if (opts.ignoreRepeats) return;
      ctx.err.write(`\nsecond ${sig}: ${opts.onSecond ?? 'exiting now; everything written so far is complete'}\n`);
      process.exit(code(sig));
    }
    signal = sig;
    ctx.err.write(`\n${sig}: ${opts.onFirst} (send again to exit at once)\n`);
  };
  process.on('SIGINT', on);
  process.on('SIGTERM', on);
  return {
    requested: () => signal !== null,
    signal: () => signal,
    exitCode: () => code(signal),
    dispose: () => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    },
  };
}
