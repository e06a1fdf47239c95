// Expectation over Transformation (Athalye, Engstrom, Ilyas & Kwok 2018; as used against
// randomized defenses in Athalye, Carlini & Wagner 2018, §4.2): against a classifier with
// randomness, follow the gradient of the *expected* loss, estimated as the mean of the
// gradients of `samples` independent stochastic forwards:
//   ∇ₓ E_r[L(f_r(x))] ≈ (1/k) Σ_s ∇ₓ L(f_{r_s}(x)),  r_s drawn afresh for every estimate.
// The stochastic forward is the target's `sampleLogits` (VIB sampling fresh noise, dropout on).
//
// Written once here; every gradient attack with an `eot` parameter takes its gradients through
// `Eot`. With eot = 1 nothing changes: the gradient of the target's own forward (`logits`),
// bit for bit. What EOT then buys depends on that forward: ibrar's VIB evaluates with fixed
// noise (deterministic), so eot = 1 is the exact gradient of the classifier being scored and
// eot > 1 attacks the stochastic classifier behind it (fresh noise; robust to the draw), scored
// on the fixed one; a randomized defense whose `logits` is itself random gets one sample's
// gradient at eot = 1 and the mean of k at eot = k (the case EOT was made for). With eot > 1
// on a deterministic target (no `sampleLogits`) every sample would give the same gradient, so
// their mean *is* the plain gradient: the attack computes it once and says so in its result
// (`extra['eot.deterministicTarget'] = 1`) rather than failing. That is what AutoAttack does
// with version 'rand' on a deterministic model (it runs, after a warning), and it keeps a sweep
// over models, some randomized and some not, running.
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { inputGrad } from './common';
import { posInt } from './params';
import type { AttackContext, AttackResult, AttackTarget } from './types';

/** The `eot` parameter: gradient samples per step (1 = plain gradient). */
export const eotParam = () => posInt(1);

export type Forward = (x: tf.Tensor4D) => tf.Tensor2D;

export class Eot {
  private constructor(
    private readonly target: AttackTarget,
    /** Samples asked for. */
    readonly requested: number,
    /** Draws each sample's randomness; null when the gradient is the plain one. */
    private readonly rng: Rng | null,
  ) {}

  /** EOT with `samples` forwards per gradient; its randomness is a fork of the attack's stream. */
  static of(ctx: Pick<AttackContext, 'target' | 'rng'>, samples: number): Eot {
    const stochastic = typeof ctx.target.sampleLogits === 'function';
    return new Eot(ctx.target, samples, samples > 1 && stochastic ? ctx.rng.fork('eot') : null);
  }

  /** More than one stochastic forward per gradient. */
  get active(): boolean {
    return this.rng !== null;
  }

  /**
   * The forwards of one gradient estimate: `requested` stochastic ones, each with its own seed
   * (calling one twice replays the same randomness), or the eval forward alone.
   */
  forwards(): Forward[] {
    const { target, rng } = this;
    if (!rng) return [(x) => target.logits(x)];
    return Array.from({ length: this.requested }, () => {
      const seed = rng.seed();
      return (x: tf.Tensor4D) => target.sampleLogits!(x, new Rng(seed));
    });
  }

  /** What the result reports about EOT. */
  extra(): Record<string, number> {
    return this.requested > 1 && !this.rng ? { 'eot.deterministicTarget': 1 } : {};
  }
}

/**
 * ∇ₓ loss(logits, x) averaged over the EOT forwards (one plain gradient when EOT is off).
 * Returns a new tensor; intermediate gradients are disposed as they are summed.
 */
export function eotInputGrad(eot: Eot, loss: (logits: tf.Tensor2D, x: tf.Tensor4D) => tf.Scalar, x: tf.Tensor4D): tf.Tensor4D {
  const fwds = eot.forwards();
  if (fwds.length === 1) return tf.tidy(() => inputGrad((xi) => loss(fwds[0](xi), xi), x));
  let sum: tf.Tensor4D | null = null;
  for (const f of fwds) {
    const g = tf.tidy(() => inputGrad((xi) => loss(f(xi), xi), x));
    if (sum) {
      const next: tf.Tensor4D = tf.add(sum, g);
      tf.dispose([sum, g]);
      sum = next;
    } else sum = g;
  }
  const mean = tf.div(sum!, fwds.length) as tf.Tensor4D;
  sum!.dispose();
  return mean;
}

/** `res` with EOT's note merged into its `extra` (unchanged when there is nothing to say). */
export function withEotExtra(res: AttackResult, eot: Eot): AttackResult {
  const note = eot.extra();
  return Object.keys(note).length === 0 ? res : { ...res, extra: { ...(res.extra ?? {}), ...note } };
}
