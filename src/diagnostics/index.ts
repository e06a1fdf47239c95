// Gradient-masking diagnostics: the checks in the order they run (white-box first: the others
// compare with them), and the verdict. Adding a check is one file in checks/ plus one line here.
import { accuracy, Diagnosis, type DiagnosisInput } from './diagnosis';
import { adaptiveCheck } from './checks/adaptive';
import { blackBoxCheck } from './checks/black-box';
import { convergenceCheck } from './checks/convergence';
import { epsSweepCheck } from './checks/eps-sweep';
import { gradientHealthCheck } from './checks/gradient-health';
import { iterativeCheck } from './checks/iterative';
import { transferCheck } from './checks/transfer';
import type { Check, CheckOutcome, Findings } from './types';

export { Diagnosis, type DiagnosisInput } from './diagnosis';
export type { CheckOutcome, CheckStatus } from './types';

// Raised whenever a check changes what it measures, so that a finished diagnosis written by an
// earlier ibrar is run again rather than reused. 2: Square on the white-box survivors only;
// 3: the convergence check's traced run is the first of its 10 restarts.
export const CHECKS_REVISION = 3;

export const CHECKS: readonly Check[] = [iterativeCheck, convergenceCheck, epsSweepCheck, adaptiveCheck, blackBoxCheck, transferCheck, gradientHealthCheck];

export interface DiagnosticsSummary {
  checks: CheckOutcome[];
  verdict: 'supported' | 'suspect';
  /** The checks that warned. */
  warned: string[];
  /** `robustness claim: supported` or `robustness claim: suspect (<checks>)`. */
  line: string;
  clean_acc: number;
  /** Per-example worst case over every attack the checks ran at the evaluated ε. */
  worst_case_acc: number;
}

export function verdictLine(warned: readonly string[]): string {
  return warned.length ? `robustness claim: suspect (${warned.join(', ')})` : 'robustness claim: supported';
}

/**
 * Run the checks not in `done` (finished earlier: a resumed diagnosis), calling `onCheck` after
 * each so the caller can save progress. Findings carry over from the finished ones.
 */
export async function runDiagnostics(
  input: DiagnosisInput,
  opts: { done?: readonly CheckOutcome[]; onCheck?: (c: CheckOutcome) => void; only?: readonly string[] } = {},
): Promise<DiagnosticsSummary> {
  const d = new Diagnosis(input);
  const clean = await d.cleanCorrect();
  const outcomes: CheckOutcome[] = [];
  const found: Findings = { whiteBox: null, whiteBoxAcc: null };
  const absorb = (c: CheckOutcome, whiteBox: boolean) => {
    outcomes.push(c);
    if (whiteBox && c.robust) {
      found.whiteBox = (found.whiteBox ?? clean).map((w, i) => w && c.robust![i]);
      found.whiteBoxAcc = accuracy(found.whiteBox);
    }
  };
  for (const check of CHECKS) {
    if (opts.only && !opts.only.includes(check.id)) continue;
    const earlier = opts.done?.find((c) => c.id === check.id);
    if (earlier) {
      absorb(earlier, check.whiteBox);
      continue;
    }
    const t0 = process.hrtime.bigint();
    const res = await check.run(d, found);
    const outcome: CheckOutcome = { id: check.id, title: check.title, ...res, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
    absorb(outcome, check.whiteBox);
    opts.onCheck?.(outcome);
  }
  let worst = clean;
  for (const c of outcomes) if (c.robust) worst = worst.map((w, i) => w && c.robust![i]);
  const warned = outcomes.filter((c) => c.status === 'warn').map((c) => c.id);
  return { checks: outcomes, verdict: warned.length ? 'suspect' : 'supported', warned, line: verdictLine(warned), clean_acc: accuracy(clean), worst_case_acc: accuracy(worst) };
}
