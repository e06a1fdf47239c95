import type { CommandModule } from 'yargs';
import { defaultContext } from './context';

interface ImportArgs {
  weights: string;
  config: string;
  name?: string;
  set: string[];
  debug: boolean;
}

export const importCommand: CommandModule<object, ImportArgs> = {
  command: 'import',
  describe: 'make a run directory from a PyTorch state_dict saved as safetensors (a model trained elsewhere), ready for eval, plot, report and train --init-from',
  builder: (y) =>
    y
      .option('weights', { type: 'string', demandOption: true, describe: 'the state_dict as .safetensors, under the names ibrar uses (VGG16: the authors\' layer1.0.0.weight …); see README "Models trained elsewhere"' })
      .option('config', { alias: 'c', type: 'string', demandOption: true, describe: 'experiment config (YAML) describing the model and its data' })
      .option('name', { type: 'string', describe: 'experiment name (default: the config\'s name); the run goes to <runsDir>/<name>/<time>/' })
      .option('set', { type: 'string', array: true, default: [], describe: 'override a config key: --set model.width=0.5' }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { loadConfig } = await import('../config/load');
    const sets = [...args.set, ...(args.name !== undefined ? [`name=${JSON.stringify(args.name)}`] : [])];
    const cfg = loadConfig(args.config, sets);
    const { importWeights } = await import('../jobs/import');
    const { runDir, imported } = await importWeights({ weightsFile: args.weights, cfg, configFile: args.config, onNote: (m) => ctx.err.write(m + '\n') });
    const conv = Object.entries(imported.converted).map(([d, n]) => `${n} ${d}`);
    ctx.err.write(
      `imported ${imported.tensors - imported.ignored.length} tensors (sha256 ${imported.sha256.slice(0, 12)}…)` +
        (conv.length ? `, converted to float32: ${conv.join(', ')}` : '') +
        (imported.ignored.length ? `, ignored ${imported.ignored.length} num_batches_tracked` : '') +
        `\nnext: ibrar eval --run ${runDir} --attacks pgd,fgsm\n`,
    );
    ctx.out.write(runDir + '\n');
  },
};
