// The 4-cell tiny sweep the local and Slurm sweep tests run: ib.enabled × seed on a small CNN
// over synthetic 8×8 images; 8 steps per epoch with a checkpoint every 2 steps, so a kill or a
// requeue always finds a mid-epoch checkpoint to resume from.
import * as YAML from 'yaml';

/** `extra`: more top-level keys of the sweep file (executor, slurm, …). */
export function tinySweepYaml(runsDir: string, opts: { epochs: number; extra?: Record<string, unknown> }): string {
  return YAML.stringify({
    base: {
      name: 'tiny',
      seed: 0,
      backend: 'wasm',
      runsDir,
      data: { dataset: 'synthetic', synthetic: { height: 8, width: 8, channels: 3, classes: 4, trainSize: 128, testSize: 64 } },
      model: { arch: 'small-cnn', width: 0.25 },
      train: { method: 'ce', epochs: opts.epochs, batchSize: 16, evalBatchSize: 64, lr: 0.05, schedule: { type: 'none' }, checkpointEvery: 2 },
      ib: { layers: ['conv3', 'fc1'] },
    },
    axes: { 'ib.enabled': [false, true], seed: [0, 1] },
    eval: { attacks: ['fgsm'], eps: 0.1, n: 64, batchSize: 32 },
    ...opts.extra,
  });
}
