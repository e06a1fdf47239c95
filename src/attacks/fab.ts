// FAB, untargeted (docs/method.md §5: torchattacks FAB(eps=0.03), 10 steps, 1 restart,
// α_max 0.1, η 1.05, β 0.9, L∞). Results farther than ε are discarded. `norm` L2 / L1 uses
// AutoAttack's L2 / L1 projections (ε then defaults to 0.5 / 12). No `eot`: see fab-core.ts.
import { z } from 'zod';
import { fabAttack } from './fab-core';
import { epsByNormParam, epsForNorm, LP_NORMS, normParam, type LpNorm } from './lp';
import { checkLinfBudget, defineAttack, posInt } from './params';

export const fabParamsShape = {
  /** Default: 0.03 for L∞ (IB-RAR), 0.5 for L2, 12 for L1 (AutoAttack). */
  eps: epsByNormParam(),
  norm: normParam(LP_NORMS, 'Linf'),
  steps: posInt(10),
  restarts: posInt(1),
  alphaMax: z.number().min(0).max(1).default(0.1),
  eta: z.number().positive().finite().default(1.05),
  beta: z.number().min(0).max(1).default(0.9),
};

/** Strict object schema with the per-norm ε default. */
export function fabSchema<S extends z.ZodRawShape>(shape: S) {
  return z
    .object(shape)
    .strict()
    .superRefine((p, ctx) => checkLinfBudget(p as { norm?: string; eps?: number }, ctx))
    .transform((p) => epsForNorm<{ norm: LpNorm; eps?: number }>(0.03)(p as { norm: LpNorm; eps?: number }) as z.output<z.ZodObject<S>> & { eps: number });
}

const schema = fabSchema(fabParamsShape);
export type FabParams = z.output<typeof schema>;

export const fab = defineAttack<FabParams>({
  name: 'fab',
  description: 'Fast adaptive boundary attack, L∞ (or L2 / L1 via norm), untargeted (minimal-norm; kept only within ε) (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await fabAttack(ctx, x, y, p, null) }),
});
