// What a probe remembers between invocations, all written atomically:
//   <probeDir>/probe-config.yaml              the resolved config the probe was started with
//   <probeDir>/probe-state.json               candidates, their status and numbers (the parent's view)
//   <probeDir>/candidates/<id>/candidate.json one candidate's own record, written by whoever runs
//                                             it (in-process or a worker process); authoritative
// A re-run reads the candidate files, so work finished by a worker whose parent died is kept.
import { makeDirs, MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';
import * as path from 'path';
import { writeJsonAtomic } from './atomic';

export type CandidateKind = 'ce' | 'layer' | 'all' | 'robust';

export interface Candidate {
  /** Folder and run name: `ce`, the tap name, `all` or `robust`. */
  id: string;
  kind: CandidateKind;
  /** Table row label: "CE only", the tap, "All layers", "Robust layers (…)". */
  label: string;
  /** IB layers S ([] for the baseline). */
  layers: string[];
}

/** Candidate runs live in <probeDir>/candidates/<id>/<time>/ (ordinary run dirs). */
export function candidatesRoot(probeDir: string): string {
  return path.join(probeDir, 'candidates');
}


export type CandidateStatus = 'pending' | 'training' | 'evaluating' | 'done' | 'failed';

export interface CandidateRecord extends Candidate {
  status: CandidateStatus;
  /** The candidate's run directory, once training has started. */
  runDir?: string;
  clean_acc?: number;
  adv_acc?: number;
  /** The evaluation report the numbers come from. */
  evalFile?: string;
  /** Parameters of the attack as evaluated (steps, α, …) and the number of test examples. */
  attackParams?: Record<string, unknown>;
  n?: number;
  error?: string;
  updatedAt?: string;
}

export interface ProbeState {
  format: 'ibrar-probe-state/1';
  name: string;
  /** configHash of the probe's resolved config: a re-run with another config starts a new probe. */
  configHash: string;
  createdAt: string;
  updatedAt: string;
  complete: boolean;
  candidates: CandidateRecord[];
}

export const STATE_FILE = 'probe-state.json';
export const PROBE_CONFIG_FILE = 'probe-config.yaml';

export function statePath(probeDir: string): string {
  return path.join(probeDir, STATE_FILE);
}

export function readState(probeDir: string): ProbeState | null {
  try {
    const s = JSON.parse(readTextBoundedOrNull(statePath(probeDir), { maxBytes: MAX_STATE_FILE_BYTES, what: 'probe state' }) ?? 'null') as ProbeState;
    return s && s.format === 'ibrar-probe-state/1' && Array.isArray(s.candidates) ? s : null;
  } catch {
    return null;
  }
}

export function writeState(probeDir: string, state: ProbeState): void {
  state.updatedAt = new Date().toISOString();
  writeJsonAtomic(statePath(probeDir), state);
}

export function candidateFile(probeDir: string, id: string): string {
  return path.join(candidatesRoot(probeDir), id, 'candidate.json');
}

export function readCandidate(probeDir: string, id: string): CandidateRecord | null {
  try {
    return JSON.parse(readTextBoundedOrNull(candidateFile(probeDir, id), { maxBytes: MAX_STATE_FILE_BYTES, what: 'probe candidate record' }) ?? 'null') as CandidateRecord;
  } catch {
    return null;
  }
}

export function writeCandidate(probeDir: string, rec: CandidateRecord): void {
  const file = candidateFile(probeDir, rec.id);
  makeDirs(path.dirname(file));
  writeJsonAtomic(file, { ...rec, updatedAt: new Date().toISOString() });
}

/** Fold the candidates' own files into the state (they win). */
export function syncState(probeDir: string, state: ProbeState): ProbeState {
  state.candidates = state.candidates.map((c) => {
    const own = readCandidate(probeDir, c.id);
    return own ? { ...c, ...own } : c;
  });
  state.complete = state.candidates.every((c) => c.status === 'done');
  return state;
}
