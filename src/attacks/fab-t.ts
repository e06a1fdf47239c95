// FAB-T: targeted FAB-L∞ as in AutoAttack 'standard' (100 steps, 1 restart per target,
// targets = the 2nd..10th most likely classes of the clean input, i.e. 9, capped at K − 1).
import { z } from 'zod';
import { fabAttack } from './fab-core';
import { fabParamsShape } from './fab';
import { defineAttack, posInt } from './params';

const schema = z
  .object({
    ...fabParamsShape,
    steps: posInt(100),
    nTargets: posInt(9),
  })
  .strict();
export type FabTParams = z.output<typeof schema>;

export const fabT = defineAttack<FabTParams>({
  name: 'fab-t',
  description: 'Targeted FAB-L∞ over the top-9 other classes (AutoAttack standard: 100 steps)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await fabAttack(ctx, x, y, p, p.nTargets) }),
});
