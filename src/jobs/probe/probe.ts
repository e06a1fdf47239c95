// `ibrar probe-layers`: train and evaluate every candidate of a layer probe, then write
// probe.json / probe.csv / probe.md. Layout:
//   <runsDir>/<name>-probe/<YYYYMMDD-HHMMSS>/
//     probe-config.yaml  probe-state.json  probe.json  probe.csv  probe.md
//     candidates/<id>/candidate.json  candidates/<id>/worker.log (--jobs > 1)
//     candidates/<id>/<YYYYMMDD-HHMMSS>/   an ordinary run dir (config.yaml, metrics, checkpoints, eval/)
// Re-running the same command (same resolved config and candidates) continues the newest
// unfinished probe: finished candidates are kept, an interrupted candidate resumes its run from
// its last checkpoint. --jobs N runs N candidates at once in worker processes
// (`ibrar probe-layers --worker DIR --candidate ID`) on the local pool shared with `ibrar sweep`
// (src/jobs/pool.ts): the same processes, each with floor(cores / N) native threads.
import { makeDirs, MIB, readTextBoundedOrNull } from '../../engine/safe-read';
import * as path from 'path';
import type { ExperimentConfig } from '../../config/schema';
import { configToYaml } from '../../config/load';
import { UserError } from '../../errors';
import { configHash } from '../../runs/config-hash';
import { createStampedDir, listRunDirs } from '../../runs/run-dir';
import { writeFileAtomic, writeJsonAtomic } from '../../runs/atomic';
import type { TrainProgress } from '../train';
import { candidatesRoot, probeCandidates, type Candidate } from './candidates';
import { PROBE_CONFIG_FILE, readCandidate, readState, syncState, writeCandidate, writeState, type CandidateRecord, type ProbeState } from '../../runs/probe-files';
import { buildProbeResult, probeCsv, probeMarkdown, type ProbeResult } from '../../report/probe-table';
import { probeBaseConfig, runCandidate } from './worker';
import { availableCores, planThreads, runPool } from '../pool';

export interface ProbeProgress {
  onStart?(info: { probeDir: string; candidates: CandidateRecord[]; resumed: boolean; jobs: number }): void;
  onCandidateStart?(c: CandidateRecord, index: number, total: number): void;
  onCandidateEnd?(c: CandidateRecord, outcome: 'done' | 'interrupted' | 'failed'): void;
  onNote?(message: string): void;
  /** Passed to in-process training (--jobs 1). */
  train?: TrainProgress;
}

export interface ProbeRequest {
  /** The probe's config (not needed with `probeDir`, whose saved config is used). */
  cfg?: ExperimentConfig;
  /** Single-layer candidates (default: every tap). */
  layers?: string[];
  jobs?: number;
  /** Continue this probe directory (default: the newest unfinished one with the same config). */
  probeDir?: string;
  /** Always start a new probe directory. */
  fresh?: boolean;
  progress?: ProbeProgress;
  shouldStop?: () => boolean;
  /** The CLI launcher for worker processes (default: this package's bin/ibrar.js). */
  cliPath?: string;
}

export interface ProbeOutcome {
  probeDir: string;
  interrupted: boolean;
  /** Candidates that failed this time (their errors are in the result rows / candidate files). */
  failed: string[];
  result: ProbeResult;
  files: string[];
}

const sameCandidates = (a: readonly Candidate[], b: readonly Candidate[]) =>
  a.length === b.length && a.every((c, i) => c.id === b[i].id && c.layers.join(',') === b[i].layers.join(','));

function newProbeDir(cfg: ExperimentConfig): string {
  return createStampedDir(path.join(cfg.runsDir, `${cfg.name}-probe`), 'probe folder');
}

/** The newest probe of this config and candidate list, or null. */
function findExisting(cfg: ExperimentConfig, candidates: readonly Candidate[], hash: string): { dir: string; state: ProbeState } | null {
  const dirs = listRunDirs(cfg.runsDir, `${cfg.name}-probe`).reverse();
  for (const dir of dirs) {
    const st = readState(dir);
    if (st && st.configHash === hash && sameCandidates(st.candidates, candidates)) return { dir, state: st };
  }
  return null;
}

function openProbe(req: ProbeRequest): { probeDir: string; state: ProbeState; resumed: boolean } {
  if (req.probeDir) {
    const state = readState(req.probeDir);
    if (!state) throw new UserError('not a probe directory (probe-state.json missing)', req.probeDir);
    return { probeDir: path.resolve(req.probeDir), state: syncState(req.probeDir, state), resumed: true };
  }
  const cfg = req.cfg;
  if (!cfg) throw new UserError('probe-layers needs a config or a probe directory to continue');
  const candidates = probeCandidates(cfg, req.layers);
  const hash = configHash(cfg);
  const existing = req.fresh ? null : findExisting(cfg, candidates, hash);
  if (existing) return { probeDir: path.resolve(existing.dir), state: syncState(existing.dir, existing.state), resumed: true };
  const probeDir = path.resolve(newProbeDir(cfg));
  writeFileAtomic(path.join(probeDir, PROBE_CONFIG_FILE), configToYaml(cfg));
  const now = new Date().toISOString();
  const state: ProbeState = {
    format: 'ibrar-probe-state/1',
    name: cfg.name,
    configHash: hash,
    createdAt: now,
    updatedAt: now,
    complete: false,
    candidates: candidates.map((c) => ({ ...c, status: 'pending' })),
  };
  makeDirs(candidatesRoot(probeDir));
  writeState(probeDir, state);
  return { probeDir, state, resumed: false };
}

function writeOutputs(cfg: ExperimentConfig, probeDir: string, state: ProbeState): { result: ProbeResult; files: string[] } {
  const result = buildProbeResult(cfg, probeDir, state.candidates);
  const files = ['probe.json', 'probe.csv', 'probe.md'].map((f) => path.join(probeDir, f));
  writeJsonAtomic(files[0], result);
  writeFileAtomic(files[1], probeCsv(result));
  writeFileAtomic(files[2], probeMarkdown(result));
  return { result, files };
}

async function runInProcess(req: ProbeRequest, probeDir: string, state: ProbeState, pending: CandidateRecord[], failed: string[]): Promise<boolean> {
  const total = state.candidates.length;
  for (const c of pending) {
    if (req.shouldStop?.()) return true;
    req.progress?.onCandidateStart?.(c, state.candidates.findIndex((x) => x.id === c.id) + 1, total);
    try {
      const outcome = await runCandidate(probeDir, c.id, { shouldStop: req.shouldStop, progress: req.progress?.train });
      syncState(probeDir, state);
      writeState(probeDir, state);
      req.progress?.onCandidateEnd?.(state.candidates.find((x) => x.id === c.id)!, outcome);
      if (outcome === 'interrupted') return true;
    } catch (err) {
      failed.push(c.id);
      syncState(probeDir, state);
      writeState(probeDir, state);
      req.progress?.onCandidateEnd?.(state.candidates.find((x) => x.id === c.id)!, 'failed');
      req.progress?.onNote?.(`candidate ${c.id} failed: ${(err as Error).message}`);
    }
  }
  return false;
}

function lastLines(file: string, n: number): string {
  try {
    return (readTextBoundedOrNull(file, { maxBytes: 64 * MIB, what: 'worker log' }) ?? '').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

async function runWorkers(req: ProbeRequest, probeDir: string, state: ProbeState, pending: CandidateRecord[], failed: string[], jobs: number): Promise<boolean> {
  const total = state.candidates.length;
  const queue = [...pending];
  let interrupted = false;
  // The sweep's pool: the same worker processes and the same split of the cores into threads.
  const plan = planThreads(availableCores(), { jobs });
  const { stopped } = await runPool({
    jobs: plan.jobs,
    threads: plan.threads,
    cliPath: req.cliPath,
    shouldStop: req.shouldStop,
    next: () => {
      const c = queue.shift();
      if (!c) return null;
      req.progress?.onCandidateStart?.(c, state.candidates.findIndex((x) => x.id === c.id) + 1, total);
      return { key: c.id, args: ['probe-layers', '--worker', probeDir, '--candidate', c.id], log: path.join(candidatesRoot(probeDir), c.id, 'worker.log') };
    },
    onExit: (task, code) => {
      syncState(probeDir, state);
      writeState(probeDir, state);
      const rec = state.candidates.find((x) => x.id === task.key)!;
      if (code === 0 && rec.status === 'done') req.progress?.onCandidateEnd?.(rec, 'done');
      else if (code === 130 || code === 143 || req.shouldStop?.()) {
        interrupted = true;
        req.progress?.onCandidateEnd?.(rec, 'interrupted');
      } else {
        failed.push(rec.id);
        if (rec.status !== 'failed') writeCandidate(probeDir, { ...rec, status: 'failed', error: `worker exited with code ${code}` });
        syncState(probeDir, state);
        writeState(probeDir, state);
        req.progress?.onCandidateEnd?.(rec, 'failed');
        req.progress?.onNote?.(`candidate ${rec.id} failed (exit ${code}); last lines of ${task.log}:\n${lastLines(task.log, 5)}`);
      }
    },
  });
  return interrupted || (stopped && queue.length > 0);
}

export async function runProbe(req: ProbeRequest): Promise<ProbeOutcome> {
  const jobs = Math.max(1, Math.floor(req.jobs ?? 1));
  const { probeDir, state, resumed } = openProbe(req);
  const cfg = probeBaseConfig(probeDir);
  req.progress?.onStart?.({ probeDir, candidates: state.candidates, resumed, jobs });
  // A candidate a dead worker left as `failed` is retried; `done` ones are kept.
  const pending = state.candidates.filter((c) => c.status !== 'done');
  for (const c of pending) if (c.status === 'failed') writeCandidate(probeDir, { ...(readCandidate(probeDir, c.id) ?? c), status: 'pending', error: undefined });
  syncState(probeDir, state);
  const failed: string[] = [];
  const interrupted = jobs === 1 ? await runInProcess(req, probeDir, state, pending, failed) : await runWorkers(req, probeDir, state, pending, failed, jobs);
  syncState(probeDir, state);
  writeState(probeDir, state);
  const { result, files } = writeOutputs(cfg, probeDir, state);
  return { probeDir, interrupted, failed, result, files };
}
