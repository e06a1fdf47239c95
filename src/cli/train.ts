import type { CommandModule } from 'yargs';
import { defaultContext } from './context';
import { UserError, EXIT } from '../errors';

interface TrainArgs {
  config?: string;
  set: string[];
  resume?: string;
  'print-config': boolean;
  backend?: string;
  debug: boolean;
}

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'train a model from a YAML experiment config (writes runs/<name>/<time>/)',
  builder: (y) =>
    y
      .option('config', { alias: 'c', type: 'string', describe: 'experiment config (YAML)' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a config key: --set train.epochs=2' })
      .option('resume', { type: 'string', describe: 'continue the run in this directory from its last checkpoint' })
      .option('print-config', { type: 'boolean', default: false, describe: 'print the resolved config and exit' })
      .option('backend', { type: 'string', describe: 'auto|tensorflow|webgpu|wasm|cpu (same as --set backend=…)' })
      .check((a) => {
        if (!a.config && !a.resume) throw new UserError('train needs --config FILE or --resume RUN_DIR');
        if (a.config && a.resume) throw new UserError('give either --config or --resume, not both (a resumed run uses its saved config)');
        return true;
      }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { loadConfig, configToYaml } = await import('../config/load');
    const sets = [...args.set, ...(args.backend ? [`backend=${args.backend}`] : [])];
    const cfg = args.config ? loadConfig(args.config, sets) : undefined;
    if (args['print-config']) {
      if (!cfg) throw new UserError('--print-config needs --config');
      ctx.out.write(configToYaml(cfg));
      return;
    }
    const { runTraining } = await import('../train/run');
    const code = await runTraining({ cfg, configFile: args.config, resumeDir: args.resume, ctx });
    process.exitCode = code ?? EXIT.ok;
  },
};
