// FAB-L∞, untargeted (method.md §5: torchattacks FAB(eps=0.03), 10 steps, 1 restart,
// α_max 0.1, η 1.05, β 0.9). Results farther than ε are discarded.
import { z } from 'zod';
import { fabAttack } from './fab-core';
import { defineAttack, epsParam, posInt } from './params';

export const fabParamsShape = {
  eps: epsParam(0.03),
  steps: posInt(10),
  restarts: posInt(1),
  alphaMax: z.number().min(0).max(1).default(0.1),
  eta: z.number().positive().finite().default(1.05),
  beta: z.number().min(0).max(1).default(0.9),
};

const schema = z.object(fabParamsShape).strict();
export type FabParams = z.output<typeof schema>;

export const fab = defineAttack<FabParams>({
  name: 'fab',
  description: 'Fast adaptive boundary attack, L∞, untargeted (minimal-norm; kept only within ε) (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await fabAttack(ctx, x, y, p, null) }),
});
