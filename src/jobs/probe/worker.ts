// One probe candidate, start to finish: train (or resume its run), evaluate clean and under
// the probe's attack, record the numbers in candidates/<id>/candidate.json. The same code runs
// in-process (--jobs 1) and in worker processes (--jobs N).
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../../config/load';
import type { ExperimentConfig } from '../../config/schema';
import { UserError } from '../../errors';
import { evaluateRun } from '../eval';
import { train, type TrainProgress } from '../train';
import { readCheckpointSidecar } from '../../runs/checkpoint';
import { runLayout } from '../../runs/run-dir';
import { candidateConfig, candidatesRoot } from './candidates';
import { PROBE_CONFIG_FILE, readCandidate, readState, writeCandidate, type CandidateRecord } from '../../runs/probe-files';

export type CandidateOutcome = 'done' | 'interrupted';

export interface CandidateOptions {
  shouldStop?: () => boolean;
  progress?: TrainProgress;
}

export function probeBaseConfig(probeDir: string): ExperimentConfig {
  return loadConfig(path.join(probeDir, PROBE_CONFIG_FILE));
}

/** true when the run's `last` checkpoint is the end of training. */
function trainingFinished(runDir: string, epochs: number): boolean | null {
  try {
    const sc = readCheckpointSidecar(runLayout(runDir).checkpoints, 'last');
    return sc.epoch >= epochs && sc.step === 0;
  } catch {
    return null;
  }
}

export async function runCandidate(probeDir: string, id: string, opts: CandidateOptions = {}): Promise<CandidateOutcome> {
  const state = readState(probeDir);
  const def = state?.candidates.find((c) => c.id === id);
  if (!state || !def) throw new UserError(`no candidate '${id}' in this probe`, probeDir);
  const base = probeBaseConfig(probeDir);
  const cfg = candidateConfig(base, def, probeDir);
  let rec: CandidateRecord = { ...def, ...(readCandidate(probeDir, id) ?? {}), id: def.id, kind: def.kind, label: def.label, layers: def.layers };
  if (rec.status === 'done') return 'done';
  const save = (patch: Partial<CandidateRecord>) => {
    rec = { ...rec, ...patch };
    writeCandidate(probeDir, rec);
  };
  try {
    let finished = rec.runDir ? trainingFinished(rec.runDir, cfg.train.epochs) : null;
    if (rec.runDir && finished === null) {
      // Killed before its first checkpoint: nothing to resume. Only our own folder is removed.
      const inside = path.resolve(rec.runDir).startsWith(path.resolve(candidatesRoot(probeDir)) + path.sep);
      if (inside) fs.rmSync(rec.runDir, { recursive: true, force: true });
      save({ runDir: undefined, status: 'pending' });
    }
    if (!finished) {
      const progress: TrainProgress = {
        ...opts.progress,
        onStart: (info) => {
          save({ status: 'training', runDir: info.runDir, error: undefined });
          opts.progress?.onStart?.(info);
        },
      };
      const res = rec.runDir ? await train({ resumeDir: rec.runDir, progress, shouldStop: opts.shouldStop }) : await train({ cfg, progress, shouldStop: opts.shouldStop });
      if (res.interrupted) return 'interrupted';
      finished = true;
    }
    save({ status: 'evaluating' });
    const { report, files } = await evaluateRun(
      {
        runDir: rec.runDir!,
        checkpoint: cfg.eval.checkpoint,
        attacks: [base.probe.attack],
        eps: cfg.eval.eps,
        steps: cfg.eval.steps,
        n: cfg.eval.n,
        batchSize: cfg.eval.batchSize,
        seed: cfg.seed,
      },
      { shouldStop: opts.shouldStop },
    );
    if (!report) return 'interrupted';
    save({
      status: 'done',
      clean_acc: report.clean_acc,
      adv_acc: report.attacks[0].robust_acc,
      attackParams: report.attacks[0].params,
      n: report.n,
      evalFile: files[0],
      error: undefined,
    });
    return 'done';
  } catch (err) {
    save({ status: 'failed', error: (err as Error).message });
    throw err;
  }
}
