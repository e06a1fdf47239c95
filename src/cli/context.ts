// What every command handler gets: output streams and flags, no globals, so handlers can
// be called from tests without a process.
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
