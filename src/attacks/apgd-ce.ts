// APGD on the cross-entropy (AutoAttack 'apgd-ce'). Defaults are the IB-RAR loader's `auto`
// attack (docs/method.md §5: ε 0.03, 10 steps, 1 restart, ρ 0.75, L∞); the autoattack ensemble runs
// it with AutoAttack's 100 steps. `norm` L2 / L1 (AutoAttack's threat models; ε then defaults to
// 0.5 / 12), `largeReps` (L1: AutoAttack's large-ε schedule), `eot` (gradient samples per step
// against a randomized model): see apgd-core.ts.
import { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { Eot, eotParam, withEotExtra } from './eot';
import { epsByNormParam, epsForNorm, LP_NORMS, normParam, type LpNorm } from './lp';
import { checkLinfBudget, defineAttack, posInt } from './params';

export const apgdParamsShape = {
  /** Default: 0.03 for L∞ (IB-RAR), 0.5 for L2, 12 for L1 (AutoAttack). */
  eps: epsByNormParam(),
  norm: normParam(LP_NORMS, 'Linf'),
  steps: posInt(10),
  restarts: posInt(1),
  rho: z.number().min(0).max(1).default(0.75),
  /** L1 only: AutoAttack's use_largereps (ε 3ε → 2ε → ε). */
  largeReps: z.boolean().default(false),
  eot: eotParam(),
};

/** Strict object schema with the APGD checks and the per-norm ε default. */
export function apgdSchema<S extends z.ZodRawShape>(shape: S) {
  return z
    .object(shape)
    .strict()
    .superRefine((p, ctx) => checkLinfBudget(p as { norm?: string; eps?: number }, ctx))
    .refine((p) => !(p as { largeReps?: boolean }).largeReps || (p as { norm?: LpNorm }).norm === 'L1', {
      message: 'largeReps (the large-ε schedule) applies to norm L1 only',
      path: ['largeReps'],
    })
    .transform((p) => epsForNorm<{ norm: LpNorm; eps?: number }>(0.03)(p as { norm: LpNorm; eps?: number }) as z.output<z.ZodObject<S>> & { eps: number });
}

const schema = apgdSchema(apgdParamsShape);
export type ApgdCeParams = z.output<typeof schema>;

export const apgdCe = defineAttack<ApgdCeParams>({
  name: 'apgd-ce',
  description: 'Auto-PGD on the cross-entropy, L∞ (or L2 / L1 via norm): step-size halving on a checkpoint schedule (Croce & Hein 2020, 2021)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    return withEotExtra({ xAdv: await apgdAttack(ctx, x, y, { ...p, loss: 'ce', eot }) }, eot);
  },
});
