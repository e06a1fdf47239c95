// What an evaluation writes (eval/<timestamp>.json), defined once as a schema: the eval job
// builds it, reports and figures read it back through `readEvalReport`.
import { MIB, readTextBoundedOrNull } from '../engine/safe-read';
import { z } from 'zod';

export const EVAL_FORMAT = 'ibrar-eval/1';

const attackSummarySchema = z.object({
  attack: z.string(),
  /** The attack's resolved parameters (every default filled in). */
  params: z.record(z.unknown()),
  /** Accuracy of the model on the attacked inputs (the paper's and torchattacks' number). */
  robust_acc: z.number(),
  /** Among initially correct examples, the fraction the attack flipped. */
  success_rate: z.number(),
  seconds: z.number(),
  images_per_sec: z.number(),
  /**
   * Minimum-norm attacks (CW, FMN, DeepFool, …): mean and median perturbation norm over the
   * examples that were correct and got fooled, in `distance_norm`.
   */
  mean_distance: z.number().optional(),
  median_distance: z.number().optional(),
  distance_norm: z.enum(['linf', 'l2', 'l1']).optional(),
  /**
   * Minimum-norm attacks: per initially correct example (in test-set order), the smallest
   * perturbation that fooled it (null: none found). Accuracy at any budget ε follows from one run:
   * the share of examples that were correct and need more than ε.
   */
  min_norms: z.array(z.number().nullable()).optional(),
  /** Attack-specific figures: queries for Square, robust fractions per AutoAttack stage, … */
  extra: z.record(z.number()),
});

const confusionSchema = z.object({
  attack: z.string(),
  classNames: z.array(z.string()),
  /** For each true class, the four most frequent wrong predictions under the attack (paper Table 5). */
  rows: z.array(z.object({ trueClass: z.string(), top: z.array(z.object({ predicted: z.string(), count: z.number() })) })),
  matrix: z.array(z.array(z.number())),
});

export const evalReportSchema = z.object({
  format: z.literal(EVAL_FORMAT),
  /** Identifies the request (checkpoint content, attacks, resolved parameters, n, batch size, seed). */
  key: z.string().optional(),
  runDir: z.string(),
  checkpoint: z.object({ tag: z.string(), epoch: z.number(), file: z.string() }),
  configHash: z.string(),
  architecture: z.string(),
  dataset: z.string(),
  n: z.number(),
  eps: z.number(),
  eps_str: z.string(),
  seed: z.number(),
  mask_applied: z.boolean(),
  clean_acc: z.number(),
  attacks: z.array(attackSummarySchema),
  /** Correct on the clean input and under every attack run (per-example worst case). */
  worst_case_acc: z.number(),
  confusion: z.array(confusionSchema),
  /** RobustBench-style summary. */
  robustbench: z.object({
    clean_acc: z.number(),
    autoattack_acc: z.number().optional(),
    eps: z.string(),
    architecture: z.string(),
    dataset: z.string(),
    threat_model: z.literal('Linf'),
  }),
  /** Relative path of the gradient-masking diagnostics written with this evaluation, if any. */
  diagnostics: z.string().optional(),
  createdAt: z.string(),
});

export type AttackSummary = z.infer<typeof attackSummarySchema>;
export type ConfusionTendency = z.infer<typeof confusionSchema>;
export type EvalReport = z.infer<typeof evalReportSchema>;

/** An evaluation report, or null when the file is not one (or is damaged). */
export function readEvalReport(file: string): EvalReport | null {
  try {
    const res = evalReportSchema.safeParse(JSON.parse(readTextBoundedOrNull(file, { maxBytes: 64 * MIB, what: 'evaluation report' }) ?? 'null'));
    return res.success ? res.data : null;
  } catch {
    return null;
  }
}
