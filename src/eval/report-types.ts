// Shapes of what `ibrar eval` writes (eval/<timestamp>.json). Defined once.

export interface AttackSummary {
  attack: string;
  params: Record<string, unknown>;
  /** Accuracy of the model on the attacked inputs (the paper's and torchattacks' number). */
  robust_acc: number;
  /** Among initially correct examples, the fraction the attack flipped. */
  success_rate: number;
  seconds: number;
  images_per_sec: number;
  /** Attack-specific figures: mean L2 distortion for CW, queries for Square, … */
  extra: Record<string, number>;
}

export interface ConfusionTendency {
  attack: string;
  classNames: string[];
  /** For each true class, the four most frequent wrong predictions under the attack (paper Table 5). */
  rows: Array<{ trueClass: string; top: Array<{ predicted: string; count: number }> }>;
  matrix: number[][];
}

export interface EvalReport {
  format: 'ibrar-eval/1';
  runDir: string;
  checkpoint: { tag: string; epoch: number; file: string };
  configHash: string;
  architecture: string;
  dataset: string;
  n: number;
  eps: number;
  eps_str: string;
  seed: number;
  mask_applied: boolean;
  clean_acc: number;
  attacks: AttackSummary[];
  /** Correct on the clean input and under every attack run (per-example worst case). */
  worst_case_acc: number;
  confusion: ConfusionTendency[];
  /** RobustBench-style summary. */
  robustbench: { clean_acc: number; autoattack_acc?: number; eps: string; architecture: string; dataset: string; threat_model: 'Linf' };
  createdAt: string;
}
