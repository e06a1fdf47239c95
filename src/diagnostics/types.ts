// The contract of a gradient-masking check (AutoAttack's checks.py and Carlini et al. 2019's
// checklist, as separate modules beside the attacks: the attacks stay pure, the checks judge).
import type { Diagnosis } from './diagnosis';

export type CheckStatus = 'pass' | 'warn' | 'skip';

export interface CheckOutcome {
  id: string;
  title: string;
  status: CheckStatus;
  /** One sentence with the numbers behind the status. */
  summary: string;
  numbers: Record<string, unknown>;
  seconds: number;
  /**
   * Per example, still correct under this check's attacks at the evaluated ε (when it ran any);
   * the diagnostics' worst case is taken over these.
   */
  robust?: boolean[];
}

/** What earlier checks found, for the checks that compare against them. */
export interface Findings {
  /** Per example, still correct under every white-box gradient attack so far at the evaluated ε. */
  whiteBox: boolean[] | null;
  /** Its accuracy (the best white-box attack's). */
  whiteBoxAcc: number | null;
}

export interface Check {
  id: string;
  title: string;
  /** White-box checks run first: the others compare with their result. */
  whiteBox: boolean;
  run(d: Diagnosis, found: Findings): Promise<Omit<CheckOutcome, 'id' | 'title' | 'seconds'>>;
}
