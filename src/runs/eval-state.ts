// The state of an evaluation in progress (eval/.state-<key>.json): the per-example results of
// the batches done so far, so that an interrupted evaluation continues where it stopped
// (AutoAttack's state.py does the same). The file carries the SHA-256 of its own contents and
// is checked against itself (lengths, batch count, label range) before it is trusted; a state
// that fails any check is discarded and the evaluation starts over.
import { createHash } from 'crypto';
import { UserError } from '../errors';
import { readTextBoundedOrNull } from '../engine/safe-read';
import { z } from 'zod';
import { canonicalJson } from './config-hash';
import { writeJsonAtomic } from './atomic';

export const EVAL_STATE_FORMAT = 'ibrar-eval-state/1';
/** The names freeReportBase gives reports (src/jobs/eval.ts): `yyyymmdd-hhmmss[-k]`. */
const REPORT_BASE = /^\d{8}-\d{6}(-\d+)?$/;
const MAX_STATE_BYTES = 256 << 20;

const count = z.number().int().min(0);
const stateBodySchema = z
  .object({
    format: z.literal(EVAL_STATE_FORMAT),
    key: z.string(),
    n: count,
    batchSize: z.number().int().positive(),
    doneBatches: count,
    /** Clean prediction per example done. */
    clean: z.array(count),
    /** Prediction under each attack per example done. */
    preds: z.record(z.array(count)),
    /** Perturbation norm per example where the attack reports one (null: not fooled). */
    dist: z.record(z.array(z.number().nullable())),
    seconds: z.record(z.number().min(0)),
    /** Per-attack sums over batches of `extra` values weighted by batch size, and query counts. */
    extraSums: z.record(z.record(z.number())),
    /**
     * Set (and saved) once every batch is done, before the report files are written: a process
     * killed while writing them rewrites the same files on resume instead of adding a second
     * report under a new timestamp.
     */
    report: z.object({ createdAt: z.string(), base: z.string() }).strict().optional(),
  })
  .strict();

export type EvalState = z.infer<typeof stateBodySchema>;

const fileSchema = z.object({ sha256: z.string(), state: z.unknown() }).strict();

function digest(state: unknown): string {
  return createHash('sha256').update(canonicalJson(state)).digest('hex');
}

export function writeEvalState(file: string, state: EvalState): void {
  writeJsonAtomic(file, { sha256: digest(state), state });
}

export interface StateExpectations {
  key: string;
  n: number;
  batchSize: number;
  attacks: readonly string[];
  numClasses: number;
}

/** The saved state when it exists and passes every check; otherwise why not (or null when absent). */
export function readEvalState(file: string, want: StateExpectations): { state: EvalState } | { problem: string } | null {
  // Bounded (a regular file of at most MAX_STATE_BYTES, never a pipe or a device); anything
  // unreadable is a state to discard, which the next write replaces.
  let text: string | null;
  try {
    text = readTextBoundedOrNull(file, { maxBytes: MAX_STATE_BYTES, what: 'evaluation state' });
  } catch (err) {
    if (!(err instanceof UserError)) throw err;
    return { problem: err.detail };
  }
  if (text === null) return null;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { problem: `not valid JSON (${(err as Error).message})` };
  }
  const outer = fileSchema.safeParse(raw);
  if (!outer.success) return { problem: 'not an evaluation state file' };
  let sum: string;
  try {
    sum = digest(outer.data.state);
  } catch {
    // Nested too deeply to hash (or not JSON-shaped): no state of ours looks like that.
    return { problem: 'not an evaluation state file' };
  }
  if (sum !== outer.data.sha256) return { problem: 'its contents do not match their SHA-256 (modified or damaged)' };
  const parsed = stateBodySchema.safeParse(outer.data.state);
  if (!parsed.success) return { problem: `invalid state: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}` };
  const s = parsed.data;
  if (s.key !== want.key || s.n !== want.n || s.batchSize !== want.batchSize) return { problem: 'it belongs to another evaluation request' };
  const batches = Math.ceil(want.n / want.batchSize);
  if (s.doneBatches > batches) return { problem: `${s.doneBatches} batches done of ${batches}` };
  const done = Math.min(s.doneBatches * want.batchSize, want.n);
  if (s.clean.length !== done) return { problem: `${s.clean.length} clean predictions for ${s.doneBatches} batches (${done} examples)` };
  for (const a of want.attacks) {
    if ((s.preds[a] ?? []).length !== done) return { problem: `${(s.preds[a] ?? []).length} predictions under ${a} for ${done} examples` };
    if (s.dist[a] && s.dist[a].length !== done) return { problem: `${s.dist[a].length} distances under ${a} for ${done} examples` };
  }
  const wanted = new Set(want.attacks);
  for (const rec of [s.preds, s.dist, s.seconds, s.extraSums]) {
    const extra = Object.keys(rec).find((a) => !wanted.has(a));
    if (extra !== undefined) return { problem: `records for ${extra}, which this evaluation does not run` };
  }
  const outOfRange = (v: number) => v >= want.numClasses;
  if (s.clean.some(outOfRange) || Object.values(s.preds).some((p) => p.some(outOfRange))) return { problem: `a prediction outside 0..${want.numClasses - 1}` };
  if (Object.values(s.dist).some((d) => d.some((v) => v !== null && !(v >= 0)))) return { problem: 'a negative perturbation norm' };
  // The report's name is joined to the eval folder: a plain timestamped name only.
  if (s.report && !REPORT_BASE.test(s.report.base)) return { problem: `report name '${s.report.base}' is not a timestamp (yyyymmdd-hhmmss[-k])` };
  return { state: s };
}
