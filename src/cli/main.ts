// Entry point: parse, dispatch to one file per command, map errors to exit codes
// (0 ok, 1 internal failure, 2 bad input; 130/143 after SIGINT/SIGTERM).
import yargs from 'yargs';
import type { Argv, CommandModule } from 'yargs';
import { EXIT, isUserError } from '../errors';
import { defaultContext } from './context';
import { trainCommand } from './train';
import { evalCommand } from './eval';
import { infoCommand } from './info';
import { dataCommand } from './data';
import { probeCommand } from './probe';
import { reportCommand } from './report';
import { plotCommand } from './plot';
import { importCommand } from './import';
import { runsCommand } from './runs';
import { sweepCommand } from './sweep';

// Every command is one file exporting a yargs CommandModule; register it here.
const COMMANDS: CommandModule<object, any>[] = [trainCommand, evalCommand, infoCommand, dataCommand, probeCommand, reportCommand, plotCommand, sweepCommand, importCommand, runsCommand];

export function buildCli(argv: string[]): Argv {
  let cli = yargs(argv)
    .scriptName('ibrar')
    .usage('$0 <command> [options]\n\nIB-RAR experiment runner: train, attack and compare adversarially robust classifiers.')
    .option('debug', { type: 'boolean', default: false, describe: 'show stack traces for internal errors' })
    .strict()
    .demandCommand(1, 'name a command (see --help)')
    .recommendCommands()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err, y) => {
      if (err) throw err;
      void y;
      throw new UsageError(`${msg}\nrun \`ibrar --help\` for usage`);
    });
  for (const cmd of COMMANDS) cli = cli.command(cmd);
  return cli;
}

class UsageError extends Error {}

export async function main(argv: string[]): Promise<void> {
  const debug = argv.includes('--debug');
  const ctx = defaultContext(debug);
  try {
    await buildCli(argv).parseAsync();
    if (process.exitCode === undefined) process.exitCode = EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError || isUserError(err)) {
      ctx.err.write(`ibrar: ${(err as Error).message}\n`);
      if (debug && isUserError(err)) ctx.err.write(`${(err as Error).stack}\n`);
      process.exitCode = EXIT.usage;
    } else {
      ctx.err.write(`ibrar: internal error: ${(err as Error)?.message ?? String(err)}\n`);
      ctx.err.write(debug ? `${(err as Error)?.stack}\n` : 'run again with --debug for the stack trace\n');
      process.exitCode = EXIT.internal;
    }
  }
}
