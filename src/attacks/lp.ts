// Threat-model norms of the AutoAttack family (APGD, FAB, Square, AutoAttack): the `norm`
// parameter, the default budget per norm, and per-example norms.
import { z } from 'zod';
import { tf } from '../engine/tf';
import { fraction } from '../config/schema';

export const LP_NORMS = ['Linf', 'L2', 'L1'] as const;
export type LpNorm = (typeof LP_NORMS)[number];

/**
 * Default ε per norm where the attack has no IB-RAR value: AutoAttack's README (CIFAR-10:
 * 8/255 L∞, 0.5 L2) and Croce & Hein 2021 "Mind the box" (CIFAR-10 L1: 12).
 */
export const AUTOATTACK_EPS: Record<LpNorm, number> = { Linf: 8 / 255, L2: 0.5, L1: 12 };

/** `norm`: one of `allowed`, spelled as AutoAttack does ('Linf', 'L2', 'L1'; any case accepted). */
export function normParam<N extends LpNorm>(allowed: readonly [N, ...N[]], def: N) {
  const canon = new Map(allowed.map((n) => [n.toLowerCase(), n]));
  return z.preprocess((v) => (typeof v === 'string' ? (canon.get(v.trim().toLowerCase()) ?? v) : v), z.enum(allowed)).default(def);
}

/** The attack-level norm tag (`Attack.norm`) for an LpNorm. */
export function normTag(norm: LpNorm): 'linf' | 'l2' | 'l1' {
  return norm === 'Linf' ? 'linf' : norm === 'L2' ? 'l2' : 'l1';
}

/**
 * Fills an absent `eps` with the default for the chosen norm: `linf` for L∞ (the attack's own,
 * e.g. IB-RAR's 0.03), AUTOATTACK_EPS for L2 and L1.
 */
export function epsForNorm<T extends { norm: LpNorm; eps?: number }>(linf: number) {
  return (p: T): T & { eps: number } => ({ ...p, eps: p.eps ?? (p.norm === 'Linf' ? linf : AUTOATTACK_EPS[p.norm]) });
}

/** Per-example ‖v‖ over all but the first axis, shape [n, 1, 1, 1] (keepDims) or [n]. */
export function lpNorm(v: tf.Tensor, norm: LpNorm, keepDims = false): tf.Tensor {
  return tf.tidy(() => {
    const axes = v.shape.slice(1).map((_, i) => i + 1);
    if (norm === 'Linf') return tf.max(tf.abs(v), axes, keepDims);
    if (norm === 'L2') return tf.sqrt(tf.sum(tf.square(v), axes, keepDims));
    return tf.sum(tf.abs(v), axes, keepDims);
  });
}

/** Per-example ‖a − b‖ in `norm`, on the host. */
export async function lpDist(a: tf.Tensor4D, b: tf.Tensor4D, norm: LpNorm): Promise<Float32Array> {
  const t = tf.tidy(() => lpNorm(tf.sub(a, b), norm));
  try {
    return (await t.data()) as Float32Array;
  } finally {
    t.dispose();
  }
}

/** `eps` without a default: the schema's transform fills it per norm (epsForNorm). */
export function epsByNormParam() {
  return fraction.refine((v) => v >= 0, 'must be ≥ 0').optional();
}
