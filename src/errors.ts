// Two kinds of failure, as the CLI reports them: a UserError is bad input (config, data,
// arguments, checkpoint) and exits 2 with one clear message; anything else is a bug and
// exits 1 (stack trace with --debug).

export class UserError extends Error {
  /** The message without the file and key prefix. */
  readonly detail: string;

  constructor(
    message: string,
    /** File the problem is in, when there is one. */
    readonly file?: string,
    /** Key path or byte offset inside that file. */
    readonly where?: string,
  ) {
    super(UserError.format(message, file, where));
    this.detail = message;
    this.name = 'UserError';
  }

  private static format(message: string, file?: string, where?: string): string {
    const loc = [file, where].filter(Boolean).join(': ');
    return loc ? `${loc}: ${message}` : message;
  }
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

export const EXIT = { ok: 0, internal: 1, usage: 2, sigint: 130, sigterm: 143 } as const;
