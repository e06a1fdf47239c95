// FAB-T: targeted FAB as in AutoAttack 'standard' (100 steps, 1 restart per target,
// targets = the 2nd..10th most likely classes of the clean input, i.e. 9, capped at K − 1).
// L∞ by default; `norm` L2 / L1 as fab.
import type { z } from 'zod';
import { fabAttack } from './fab-core';
import { fabParamsShape, fabSchema } from './fab';
import { defineAttack, posInt } from './params';

const schema = fabSchema({
  ...fabParamsShape,
  steps: posInt(100),
  nTargets: posInt(9),
});
export type FabTParams = z.output<typeof schema>;

export const fabT = defineAttack<FabTParams>({
  name: 'fab-t',
  description: 'Targeted FAB over the top-9 other classes, L∞ (or L2 / L1 via norm) (AutoAttack standard: 100 steps)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await fabAttack(ctx, x, y, p, p.nTargets) }),
});
