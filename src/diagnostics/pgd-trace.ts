// PGD-L∞ that keeps a record of its own run (Pintor et al. 2022, "Indicators of Attack
// Failure"): per example, whether any iterate was misclassified (an attack that found an
// adversarial point and then returned a correct one has a "silent success"), and the
// per-example cross-entropy at every step (a loss still climbing at the end means the
// optimisation was not finished). Same steps as the `pgd` attack (random start, sign steps,
// torchattacks' projection); one extra forward per step for the record.
import { tf } from '../engine/tf';
import { cePerExample, inputGrad, ceMean, oneHot, projectLinf, swap } from '../attacks/common';
import { pgdRandomStart } from '../attacks/pgd';
import type { Rng } from '../engine/rng';
import type { YieldPoint } from '../attacks/interrupt';
import type { AttackTarget } from '../attacks/types';

export interface PgdTrace {
  /** Per example: correct on the returned (last) iterate. */
  finalCorrect: boolean[];
  /** Per example: some iterate (the start included) was misclassified. */
  everFooled: boolean[];
  /** Per step (0 = the random start), per example CE. */
  loss: Float32Array[];
  /**
   * Per step (0 = the random start), per example: correctly classified at that iterate. With a
   * fixed step size, PGD for k steps is this run stopped after step k, so `correct[k]` is what
   * a k-step attack from the same start returns.
   */
  correct: boolean[][];
}

export async function tracedPgd(
  target: AttackTarget,
  x: tf.Tensor4D,
  y: tf.Tensor1D,
  labels: Int32Array,
  p: { eps: number; alpha: number; steps: number },
  rng: Rng,
  yieldPoint: YieldPoint,
): Promise<PgdTrace> {
  const n = labels.length;
  const yOh = oneHot(y, target.numClasses);
  let adv = pgdRandomStart(rng, x, p.eps);
  const everFooled = new Array<boolean>(n).fill(false);
  const loss: Float32Array[] = [];
  const correct: boolean[][] = [];
  let finalCorrect: boolean[] = [];
  const record = async () => {
    const [predT, ceT] = tf.tidy(() => {
      const logits = target.logits(adv);
      return [tf.argMax(logits, 1), cePerExample(logits, yOh)];
    });
    try {
      const [pred, ce] = await Promise.all([predT.data(), ceT.data()]);
      finalCorrect = Array.from(pred, (v, i) => v === labels[i]);
      correct.push(finalCorrect);
      finalCorrect.forEach((c, i) => {
        if (!c) everFooled[i] = true;
      });
      loss.push(Float32Array.from(ce));
    } finally {
      tf.dispose([predT, ceT]);
    }
  };
  try {
    await record();
    for (let s = 0; s < p.steps; s++) {
      await yieldPoint();
      const next = tf.tidy(() => {
        const g = inputGrad((xi) => ceMean(target.logits(xi), yOh), adv);
        return projectLinf(tf.add(adv, tf.mul(tf.sign(g), p.alpha)) as tf.Tensor4D, x, p.eps);
      });
      adv = swap(adv, next);
      await record();
    }
  } finally {
    tf.dispose([adv, yOh]);
  }
  return { finalCorrect, everFooled, loss, correct };
}
