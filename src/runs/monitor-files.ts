// The files held-out monitoring writes into a run (`train.monitor`): the information plane
// (info_plane.jsonl) and the adversarial accuracy per epoch (adv_curve.jsonl), one JSON record
// per line, appended as they happen. Written by the training job, read by figures.
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic } from './atomic';

export interface InfoPlaneRecord {
  /** Global optimisation steps done when recorded (0 = before training). */
  step: number;
  /** Fractional epochs done: step / stepsPerEpoch. */
  epoch: number;
  /** step / total steps of the run, in [0, 1] (the colour of the point in the figure). */
  progress: number;
  n: number;
  /** HSIC(X, T_l) per tap. */
  hx: Record<string, number>;
  /** HSIC(Y, T_l) per tap. */
  hy: Record<string, number>;
}

export interface AdvCurveRecord {
  /** 1-based epoch whose end this is. */
  epoch: number;
  step: number;
  n: number;
  attack: string;
  eps: number;
  steps: number | null;
  clean_acc: number;
  adv_acc: number;
}

export const INFO_PLANE_FILE = 'info_plane.jsonl';
export const ADV_CURVE_FILE = 'adv_curve.jsonl';

function readJsonl<T>(file: string): T[] {
  const text = readTextBoundedOrNull(file, { maxBytes: MAX_STATE_FILE_BYTES, what: 'record file' });
  if (text === null) return [];
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // A line cut short by a kill is dropped (the record is recomputed on resume).
    }
  }
  return out;
}

export function readInfoPlane(runDir: string): InfoPlaneRecord[] {
  return readJsonl<InfoPlaneRecord>(path.join(runDir, INFO_PLANE_FILE));
}

export function readAdvCurve(runDir: string): AdvCurveRecord[] {
  return readJsonl<AdvCurveRecord>(path.join(runDir, ADV_CURVE_FILE));
}

/** Keep the records `keep` accepts (and only complete lines), rewriting the file atomically. */
export function truncateJsonl<T>(file: string, keep: (r: T) => boolean): void {
  if (!fs.existsSync(file)) return;
  const kept = readJsonl<T>(file).filter(keep);
  writeFileAtomic(file, kept.map((r) => JSON.stringify(r) + '\n').join(''));
}

