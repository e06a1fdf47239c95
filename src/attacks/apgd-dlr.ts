// APGD on the difference-of-logits-ratio loss (AutoAttack 'apgd-dlr'); needs ≥ 3 classes.
// Defaults: AutoAttack's (100 steps, 1 restart), ε 0.03 as the other single attacks.
import { z } from 'zod';
import { apgdAttack } from './apgd-core';
import { apgdParamsShape } from './apgd-ce';
import { defineAttack, posInt } from './params';

const schema = z.object({ ...apgdParamsShape, steps: posInt(100) }).strict();
export type ApgdDlrParams = z.output<typeof schema>;

export const apgdDlr = defineAttack<ApgdDlrParams>({
  name: 'apgd-dlr',
  description: 'Auto-PGD on the DLR loss (scale-invariant margin), L∞ (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({ xAdv: await apgdAttack(ctx, x, y, { ...p, loss: 'dlr' }) }),
});
