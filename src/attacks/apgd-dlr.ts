// APGD on the difference-of-logits-ratio loss (AutoAttack 'apgd-dlr'); needs ≥ 3 classes.
// Defaults: AutoAttack's (100 steps, 1 restart), ε 0.03 as the other single attacks (L∞;
// `norm`, `largeReps`, `eot` as apgd-ce).
import type { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { apgdParamsShape, apgdSchema } from './apgd-ce';
import { Eot, withEotExtra } from './eot';
import { defineAttack, posInt } from './params';

const schema = apgdSchema({ ...apgdParamsShape, steps: posInt(100) });
export type ApgdDlrParams = z.output<typeof schema>;

export const apgdDlr = defineAttack<ApgdDlrParams>({
  name: 'apgd-dlr',
  description: 'Auto-PGD on the DLR loss (scale-invariant margin), L∞ (or L2 / L1 via norm) (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    return withEotExtra({ xAdv: await apgdAttack(ctx, x, y, { ...p, loss: 'dlr', eot }) }, eot);
  },
});
