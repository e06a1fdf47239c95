// APGD on the cross-entropy (AutoAttack 'apgd-ce'). Defaults are the IB-RAR loader's `auto`
// attack (method.md §5: ε 0.03, 10 steps, 1 restart, ρ 0.75); the autoattack ensemble runs
// it with AutoAttack standard's 100 steps.
import { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { defineAttack, epsParam, posInt } from './params';

export const apgdParamsShape = {
  eps: epsParam(0.03),
  steps: posInt(10),
  restarts: posInt(1),
  rho: z.number().min(0).max(1).default(0.75),
};

const schema = z.object(apgdParamsShape).strict();
export type ApgdCeParams = z.output<typeof schema>;

export const apgdCe = defineAttack<ApgdCeParams>({
  name: 'apgd-ce',
  description: 'Auto-PGD on the cross-entropy, L∞: step-size halving on a checkpoint schedule (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await apgdAttack(ctx, x, y, { ...p, loss: 'ce' }) }),
});
