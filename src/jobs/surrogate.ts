// The transfer check's surrogate: an independently trained model of the same architecture —
// the run's own recipe without the defence (no IB terms, no channel mask; VIB and HBaR fall back
// to their base training) and another seed (other initial weights, another data order). Trained
// on demand into <run>/surrogate/ and reused by later diagnoses of the run.
import * as fs from 'fs';
import * as path from 'path';
import { validateConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { readCheckpointSidecar } from '../runs/checkpoint';
import { listRunDirs, runLayout } from '../runs/run-dir';
import { configHash } from '../runs/config-hash';
import { loadConfig } from '../config/load';
import { openRun, type OpenedRun } from './open-run';
import { train, type TrainProgress } from './train';

export function surrogateConfig(cfg: ExperimentConfig, runDir: string): ExperimentConfig {
  const method = cfg.train.method === 'hbar' ? cfg.train.hbar!.base : cfg.train.method === 'vib' ? 'ce' : cfg.train.method;
  const { head: _head, vib: _vib, ...model } = cfg.model;
  return validateConfig({
    ...cfg,
    name: `${cfg.name}-surrogate`,
    seed: cfg.seed + 1,
    runsDir: path.join(runDir, 'surrogate'),
    model,
    train: { ...cfg.train, method, hbar: undefined },
    ib: { ...cfg.ib, enabled: false, mask: { ...cfg.ib.mask, enabled: false } },
    eval: { ...cfg.eval, attacks: [] },
  });
}

/** The trained surrogate of a run: an existing one of the same config, finished or resumed, else a new one. */
export async function ensureSurrogate(run: OpenedRun, opts: { progress?: TrainProgress; shouldStop?: () => boolean } = {}): Promise<string | null> {
  if (!run.layout) throw new Error('ensureSurrogate needs a run directory');
  const cfg = surrogateConfig(run.cfg, run.layout.dir);
  const hash = configHash({ ...cfg, threads: undefined });
  const same = listRunDirs(cfg.runsDir, cfg.name).filter((d) => {
    try {
      return configHash({ ...loadConfig(runLayout(d).config), threads: undefined }) === hash;
    } catch {
      return false;
    }
  });
  const existing = same[same.length - 1];
  if (existing) {
    try {
      const sc = readCheckpointSidecar(runLayout(existing).checkpoints, 'last');
      if (sc.epoch >= cfg.train.epochs && sc.step === 0) return existing;
    } catch {
      // not finished: resumed below
    }
  }
  opts.progress?.onNote?.(
    `training the transfer surrogate (the run's recipe without the defence, seed ${cfg.seed}) under ${cfg.runsDir}; ` +
      `it is reused by later diagnoses (--surrogate RUN_DIR uses another model, --surrogate none skips the check)`,
  );
  const res = existing ? await train({ resumeDir: existing, progress: opts.progress, shouldStop: opts.shouldStop }) : await train({ cfg, progress: opts.progress, shouldStop: opts.shouldStop });
  return res.interrupted ? null : res.runDir;
}

/**
 * An existing run as a surrogate. Transfer attacks need the same dataset (inputs and classes);
 * the transfer check of the diagnostics also the same architecture.
 */
export async function openSurrogate(dir: string, run: OpenedRun, opts: { sameArchitecture: boolean }): Promise<OpenedRun> {
  if (!fs.existsSync(dir)) throw new UserError('no such run directory', dir, '--surrogate');
  const s = await openRun({ kind: 'existing', runDir: dir, checkpoint: 'last' });
  const problem = surrogateMismatch(s, run, opts.sameArchitecture);
  if (problem) {
    s.dispose();
    throw new UserError(`this surrogate does not fit: ${problem}`, dir, '--surrogate');
  }
  return s;
}

/** Why `s` cannot stand in for `run` (null when it can). */
export function surrogateMismatch(s: OpenedRun, run: OpenedRun, sameArchitecture: boolean): string | null {
  const a = run.cfg;
  const b = s.cfg;
  if (b.data.dataset !== a.data.dataset || s.dataset.shape.join('x') !== run.dataset.shape.join('x') || s.dataset.numClasses !== run.dataset.numClasses) {
    return `it was trained on ${b.data.dataset} (${s.dataset.shape.join('×')}, ${s.dataset.numClasses} classes), the evaluated run on ${a.data.dataset} (${run.dataset.shape.join('×')}, ${run.dataset.numClasses} classes)`;
  }
  if (sameArchitecture && (b.model.arch !== a.model.arch || b.model.width !== a.model.width)) {
    return `the transfer check needs the same architecture: it is a ${b.model.arch} at width ${b.model.width}, the evaluated run a ${a.model.arch} at width ${a.model.width}`;
  }
  return null;
}
