// What the gradient-masking diagnostics write (eval/<time>-diagnostics.json) and their state
// while they run (eval/.diagnose-<key>.json: the finished checks, so an interrupted diagnosis
// continues with the next check). Defined once as schemas.
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';
import { z } from 'zod';
import { writeJsonAtomic } from './atomic';

export const DIAGNOSTICS_FORMAT = 'ibrar-diagnostics/1';

export const checkOutcomeSchema = z
  .object({
    id: z.string(),
    title: z.string(),
    status: z.enum(['pass', 'warn', 'skip']),
    summary: z.string(),
    numbers: z.record(z.unknown()),
    seconds: z.number().min(0),
    robust: z.array(z.boolean()).optional(),
  })
  .strict();

export const diagnosticsReportSchema = z
  .object({
    format: z.literal(DIAGNOSTICS_FORMAT),
    key: z.string(),
    runDir: z.string(),
    /** The evaluation report these diagnostics belong to (file name in eval/), if any. */
    evalReport: z.string().nullable(),
    checkpoint: z.object({ tag: z.string(), epoch: z.number() }),
    method: z.string(),
    ib: z.boolean(),
    n: z.number().int(),
    eps: z.number(),
    eps_str: z.string(),
    seed: z.number().int(),
    surrogate: z.string().nullable(),
    clean_acc: z.number(),
    /** Per-example worst case over every attack the checks ran at ε. */
    worst_case_acc: z.number(),
    checks: z.array(checkOutcomeSchema.omit({ robust: true })),
    verdict: z.enum(['supported', 'suspect']),
    warned: z.array(z.string()),
    line: z.string(),
    seconds: z.number(),
    createdAt: z.string(),
  })
  .strict();

export type DiagnosticsReport = z.infer<typeof diagnosticsReportSchema>;

const stateSchema = z.object({ key: z.string(), n: z.number().int(), done: z.array(checkOutcomeSchema) }).strict();
export type DiagnoseState = z.infer<typeof stateSchema>;

/** The finished checks of an interrupted diagnosis with this key (anything unreadable: none). */
export function readDiagnoseState(file: string, key: string, n: number): DiagnoseState['done'] {
  try {
    const text = readTextBoundedOrNull(file, { maxBytes: MAX_STATE_FILE_BYTES, what: 'diagnosis state' });
    if (text === null) return [];
    const s = stateSchema.safeParse(JSON.parse(text));
    if (!s.success || s.data.key !== key || s.data.n !== n) return [];
    return s.data.done.filter((c) => !c.robust || c.robust.length === n);
  } catch {
    return [];
  }
}

export function writeDiagnoseState(file: string, state: DiagnoseState): void {
  writeJsonAtomic(file, state);
}

export function readDiagnosticsReport(file: string): DiagnosticsReport | null {
  try {
    const res = diagnosticsReportSchema.safeParse(JSON.parse(readTextBoundedOrNull(file, { maxBytes: MAX_STATE_FILE_BYTES, what: 'diagnostics report' }) ?? 'null'));
    return res.success ? res.data : null;
  } catch {
    return null;
  }
}
