// The run log: pino JSON lines in <run>/log.jsonl. The destination is synchronous, so each
// log call has reached the OS when it returns: nothing is lost if the run crashes or calls
// process.exit() right after logging (an async destination would drop its buffer).
import pino from 'pino';
import { checkWritableFile } from '../engine/safe-read';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface RunLoggerOptions {
  /** Default 'info'. */
  level?: LogLevel;
  /** Also write JSON lines to stderr at this level (default: file only). */
  stderrLevel?: LogLevel;
  /** Fields on every line (e.g. { run: dir }). */
  base?: Record<string, unknown>;
}

/** A pino logger bound to the run's log file. */
export type RunLogger = pino.Logger & {
  /** Flush the file (the destination is synchronous, so this only makes certain). */
  flushSync(): void;
  /** Close the file; later log calls are errors. Resolves once the file is closed. */
  close(): Promise<void>;
};

const ORDER: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/**
 * Open the run log: `target` is the log file path or a RunLayout (its `log`). The file and its
 * folder are created if missing and appended to on resume.
 */
export function createRunLogger(target: string | { readonly log: string }, opts: RunLoggerOptions = {}): RunLogger {
  const level = opts.level ?? 'info';
  const filePath = typeof target === 'string' ? target : target.log;
  // pino opens the path itself: a pipe there would block the open, a device swallow the log.
  checkWritableFile(filePath, 'run log');
  const file = pino.destination({ dest: filePath, sync: true, append: true, mkdir: true });
  const streams: pino.StreamEntry[] = [];
  if (level !== 'silent') streams.push({ stream: file, level });
  if (opts.stderrLevel && opts.stderrLevel !== 'silent') {
    streams.push({ stream: pino.destination({ dest: 2, sync: true }), level: opts.stderrLevel });
  }
  // The logger's own level is the most verbose of its streams; each stream filters further.
  const minLevel = streams.reduce<LogLevel>((m, st) => (ORDER[st.level as LogLevel] < ORDER[m] ? (st.level as LogLevel) : m), 'silent');
  const logger = pino(
    {
      level: minLevel,
      base: { pid: process.pid, ...(opts.base ?? {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    streams.length === 0 || (streams.length === 1 && streams[0].stream === file) ? file : pino.multistream(streams),
  );
  let closed = false;
  const flushSync = (): void => {
    try {
      file.flushSync();
    } catch {
      // already closed or nothing to flush
    }
  };
  process.on('exit', flushSync);
  const close = (): Promise<void> =>
    new Promise<void>((resolve) => {
      if (closed) return resolve();
      closed = true;
      process.removeListener('exit', flushSync);
      file.once('close', () => resolve());
      file.end();
    });
  return Object.assign(logger, { flushSync, close });
}
