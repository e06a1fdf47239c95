// Targeted APGD on the targeted DLR loss (AutoAttack 'apgd-t'): for each of the 2nd..10th
// most likely classes of the clean input (9 targets, capped at K − 1), one 100-step run on
// the points still robust. Needs ≥ 4 classes.
import { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { apgdParamsShape } from './apgd-ce';
import { defineAttack, posInt } from './params';

const schema = z.object({ ...apgdParamsShape, steps: posInt(100), nTargets: posInt(9) }).strict();
export type ApgdTParams = z.output<typeof schema>;

export const apgdT = defineAttack<ApgdTParams>({
  name: 'apgd-t',
  description: 'Targeted Auto-PGD on the targeted DLR loss over the top-9 other classes, L∞ (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({
    xAdv: await apgdAttack(ctx, x, y, { eps: p.eps, steps: p.steps, restarts: p.restarts, rho: p.rho, loss: 'dlr-targeted' }, p.nTargets),
  }),
});
