// Fake run directories (config.yaml, checkpoints/, eval/*.json) for report and figure tests.
import * as fs from 'fs';
import * as path from 'path';
import { configToYaml } from '../../src/config/load';
import type { ExperimentConfig } from '../../src/config/schema';
import type { EvalReport } from '../../src/runs/eval-report';

export function fakeRun(root: string, cfg: ExperimentConfig, stamp: string): string {
  const dir = path.join(root, cfg.name, stamp);
  fs.mkdirSync(path.join(dir, 'checkpoints'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'eval'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'figures'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.yaml'), configToYaml(cfg));
  return dir;
}

export function fakeEval(
  runDir: string,
  file: string,
  opts: { clean: number; attacks: Record<string, number>; eps?: number; steps?: Record<string, number>; createdAt: string; n?: number },
): string {
  const eps = opts.eps ?? 0.03;
  const report: EvalReport = {
    format: 'ibrar-eval/1',
    runDir,
    checkpoint: { tag: 'last', epoch: 1, file: path.join(runDir, 'checkpoints', 'last.json') },
    configHash: 'x',
    architecture: 'small-cnn',
    dataset: 'synthetic',
    n: opts.n ?? 100,
    eps,
    eps_str: String(eps),
    seed: 0,
    mask_applied: false,
    clean_acc: opts.clean,
    attacks: Object.entries(opts.attacks).map(([attack, acc]) => ({
      attack,
      params: { eps, ...(opts.steps?.[attack] !== undefined ? { steps: opts.steps[attack] } : {}) },
      robust_acc: acc,
      success_rate: 0,
      seconds: 1,
      images_per_sec: 1,
      extra: {},
    })),
    worst_case_acc: Math.min(opts.clean, ...Object.values(opts.attacks)),
    confusion: [],
    robustbench: { clean_acc: opts.clean, eps: String(eps), architecture: 'small-cnn', dataset: 'synthetic', threat_model: 'Linf' },
    createdAt: opts.createdAt,
  };
  const p = path.join(runDir, 'eval', file);
  fs.writeFileSync(p, JSON.stringify(report));
  return p;
}
