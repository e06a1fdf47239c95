// Targeted APGD on the targeted DLR loss (AutoAttack 'apgd-t'): for each of the 2nd..10th
// most likely classes of the clean input (9 targets, capped at K − 1), one 100-step run on
// the points still robust. Needs ≥ 4 classes. `norm`, `largeReps`, `eot` as apgd-ce.
import type { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { apgdParamsShape, apgdSchema } from './apgd-ce';
import { Eot, withEotExtra } from './eot';
import { defineAttack, posInt } from './params';

const schema = apgdSchema({ ...apgdParamsShape, steps: posInt(100), nTargets: posInt(9) });
export type ApgdTParams = z.output<typeof schema>;

export const apgdT = defineAttack<ApgdTParams>({
  name: 'apgd-t',
  description: 'Targeted Auto-PGD on the targeted DLR loss over the top-9 other classes, L∞ (or L2 / L1 via norm) (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    const o = { eps: p.eps, steps: p.steps, restarts: p.restarts, rho: p.rho, loss: 'dlr-targeted' as const, norm: p.norm, largeReps: p.largeReps, eot };
    return withEotExtra({ xAdv: await apgdAttack(ctx, x, y, o, p.nTargets) }, eot);
  },
});
