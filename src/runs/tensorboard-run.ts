// A run's TensorBoard events (`<run>/tb/`), written through the event writer in tensorboard.ts.
// Jobs call only this module: per-epoch training scalars, the monitor's information plane and
// adversarial accuracy, and evaluations. `train.tensorboard: false` turns it off.
//
// Tags and their step (TensorBoard plots every tag against its own steps):
//   per epoch, step = epoch (1-based), written once the epoch's `last` checkpoint is committed:
//     loss/total (train_loss), loss/<part> (ce, ib, kl, ce_adv, ce_nat, bce, robust, …),
//     ib/hx/<layer>, ib/hy/<layer> (and ib/adv/h{x,y}/<layer> for TRADES/MART): epoch means of
//     the training batches' HSIC terms, acc/train, acc/test, train/lr, train/nan_skipped,
//     perf/images_per_sec, perf/epoch_seconds
//   monitor (train.monitor): info_plane/hx/<layer>, info_plane/hy/<layer> at step = global
//     step; monitor/clean_acc, monitor/adv_acc/<attack> at step = epoch
//   evaluations, step = the evaluated checkpoint's epoch: eval/clean_acc, eval/<attack> (robust
//     accuracy), eval/worst_case_acc; an evaluation that differs from the run's own `eval`
//     settings carries the differences in braces, e.g. eval/pgd{eps=8/255,steps=50}
//
// Every session (a training, a resumed training, an evaluation) writes its own new event file;
// old files are never rewritten (TensorBoard reads them all). Each (tag, step) is written once:
// what the existing files hold is read at open and skipped, and a resumed training first writes
// what the run's own files (metrics.jsonl, info_plane.jsonl, adv_curve.jsonl) hold and the
// events lack — so a run killed at any moment ends with every committed epoch exactly once.
import * as fs from 'fs';
import * as path from 'path';
import { readEventScalars, TensorBoardWriter, type TensorBoardOpenOptions } from './tensorboard';
import { readMetrics, type MetricRecord } from './metrics';
import { readAdvCurve, readInfoPlane, type AdvCurveRecord, type InfoPlaneRecord } from './monitor-files';
import type { EvalReport } from './eval-report';
import { MAX_BUFFER_BYTES, readFileBounded } from '../engine/safe-read';

export const TENSORBOARD_DIR = 'tb';

export function tensorboardDir(runDir: string): string {
  return path.join(runDir, TENSORBOARD_DIR);
}

/** The event files of a run, oldest first (by name: the creation time, then the `.N` suffix). */
export function eventFiles(runDir: string): string[] {
  const dir = tensorboardDir(runDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const key = (n: string): [number, string, number] => {
    const m = /^events\.out\.tfevents\.(\d+)\.(.*?)(?:\.(\d+))?$/.exec(n)!;
    return [Number(m[1]), m[2], m[3] ? Number(m[3]) : 0];
  };
  return names
    .filter((n) => /^events\.out\.tfevents\.\d+\./.test(n))
    .sort((a, b) => {
      const [ta, ha, na] = key(a);
      const [tb, hb, nb] = key(b);
      return ta - tb || (ha < hb ? -1 : ha > hb ? 1 : na - nb);
    })
    .map((n) => path.join(dir, n));
}

/** TensorBoard tags of one metrics.jsonl record (its `epoch` is the step, not a scalar). */
export function epochScalars(record: MetricRecord): Record<string, number> {
  const fixed: Record<string, string> = {
    train_loss: 'loss/total',
    train_acc: 'acc/train',
    test_acc: 'acc/test',
    lr: 'train/lr',
    nan_skipped: 'train/nan_skipped',
    images_per_sec: 'perf/images_per_sec',
    seconds: 'perf/epoch_seconds',
  };
  const out: Record<string, number> = {};
  for (const [key, v] of Object.entries(record)) {
    if (key === 'epoch') continue;
    // metrics.jsonl holds NaN as null; the live record has NaN.
    const value = v === null ? NaN : v;
    if (typeof value !== 'number') continue;
    const tag = fixed[key] ?? (/(^|\/)h[xy]\//.test(key) ? `ib/${key}` : `loss/${key}`);
    out[tag] = value;
  }
  return out;
}

/** What an evaluation would be without overrides: the run's own `eval` settings, resolved. */
export interface EvalDefaults {
  n: number;
  seed: number;
  attacks: readonly string[];
  /** Each attack's parameters as the run's own settings resolve them. */
  params: Record<string, Record<string, unknown>>;
}

function qualifier(diffs: Array<[string, unknown]>): string {
  if (diffs.length === 0) return '';
  const text = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v));
  return `{${diffs.map(([k, v]) => `${k}=${text(v)}`).join(',')}}`;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** TensorBoard tags of an evaluation report (see the header for the names). */
export function evalScalars(report: EvalReport, defaults: EvalDefaults): Record<string, number> {
  const base: Array<[string, unknown]> = report.n !== defaults.n ? [['n', report.n]] : [];
  const attacks = report.attacks.map((a) => a.attack);
  const sameSet = same([...attacks].sort(), [...defaults.attacks].sort());
  const out: Record<string, number> = {};
  out[`eval/clean_acc${qualifier(base)}`] = report.clean_acc;
  out[`eval/worst_case_acc${qualifier(sameSet ? base : [...base, ['attacks', attacks.join('+')]])}`] = report.worst_case_acc;
  for (const a of report.attacks) {
    const want = defaults.params[a.attack] ?? {};
    const diffs: Array<[string, unknown]> = [...base];
    if (report.seed !== defaults.seed) diffs.push(['seed', report.seed]);
    for (const k of [...new Set([...Object.keys(a.params), ...Object.keys(want)])].sort()) {
      if (!same(a.params[k], want[k])) diffs.push([k, k === 'eps' && a.params[k] === report.eps ? report.eps_str : a.params[k]]);
    }
    out[`eval/${a.attack}${qualifier(diffs)}`] = a.robust_acc;
  }
  return out;
}

export interface RunTensorBoardOptions extends TensorBoardOpenOptions {}

export class RunTensorBoard {
  private writer: TensorBoardWriter | null = null;
  /** (tag, step) pairs already in the run's event files. */
  private readonly seen = new Map<string, Set<number>>();

  private constructor(
    readonly runDir: string,
    private readonly opts: RunTensorBoardOptions,
  ) {
    for (const file of eventFiles(runDir)) {
      let buf: Buffer;
      try {
        buf = readFileBounded(file, { maxBytes: MAX_BUFFER_BYTES, what: 'TensorBoard event file' });
      } catch {
        continue;
      }
      for (const s of readEventScalars(buf)) this.mark(s.tag, s.step);
    }
  }

  /** null when the run's config turns TensorBoard off. Nothing is created before the first write. */
  static open(runDir: string, enabled: boolean, opts: RunTensorBoardOptions = {}): RunTensorBoard | null {
    return enabled ? new RunTensorBoard(runDir, opts) : null;
  }

  /** The event file this session writes (null before its first write). */
  get file(): string | null {
    return this.writer?.file ?? null;
  }

  /** One epoch's metrics record (step = its epoch). */
  epoch(record: MetricRecord): void {
    if (typeof record.epoch !== 'number') return;
    this.write(epochScalars(record), record.epoch);
  }

  infoPlane(rec: InfoPlaneRecord): void {
    const values: Record<string, number> = {};
    for (const [layer, v] of Object.entries(rec.hx)) values[`info_plane/hx/${layer}`] = v;
    for (const [layer, v] of Object.entries(rec.hy)) values[`info_plane/hy/${layer}`] = v;
    this.write(values, rec.step);
  }

  advCurve(rec: AdvCurveRecord): void {
    this.write({ 'monitor/clean_acc': rec.clean_acc, [`monitor/adv_acc/${rec.attack}`]: rec.adv_acc }, rec.epoch);
  }

  /** An evaluation's accuracies at step = the evaluated checkpoint's epoch. */
  evaluation(report: EvalReport, defaults: EvalDefaults): void {
    this.write(evalScalars(report, defaults), report.checkpoint.epoch);
  }

  /** Writes what the run's metric files hold and the event files lack (a resumed run). */
  backfill(): void {
    for (const r of readMetrics(this.runDir)) this.epoch(r);
    for (const r of readInfoPlane(this.runDir)) this.infoPlane(r);
    for (const r of readAdvCurve(this.runDir)) this.advCurve(r);
  }

  close(): void {
    this.writer?.close();
  }

  private mark(tag: string, step: number): void {
    let steps = this.seen.get(tag);
    if (!steps) this.seen.set(tag, (steps = new Set()));
    steps.add(step);
  }

  private write(values: Record<string, number>, step: number): void {
    const fresh: Record<string, number> = {};
    let any = false;
    for (const [tag, v] of Object.entries(values)) {
      if (this.seen.get(tag)?.has(step)) continue;
      fresh[tag] = v;
      any = true;
    }
    if (!any) return;
    this.writer ??= TensorBoardWriter.open(tensorboardDir(this.runDir), this.opts);
    this.writer.scalars(fresh, step);
    for (const tag of Object.keys(fresh)) this.mark(tag, step);
  }
}
