// PGD_AD, the adaptive attack of the reference code (docs/method.md §5, adp_attack/pgd_mi.py):
// PGD-L∞ as `pgd` (random start, α = ε/steps·2.3) ascending CE_mean + the IB terms that the
// evaluator supplies as ctx.extraLoss (Σ_l 0.008·HSIC(T_l(x'), X_clean) − 0.08·HSIC(T_l(x'), Y)).
// The HSIC terms couple the batch, so results depend on batch composition. No `eot`: the IB
// terms read the taps of the eval forward, which a stochastic forward does not expose.
import { z } from 'zod';
import { pgdStepSize } from '../config/schema';
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import { ceMean, oneHot } from './common';
import { defineAttack, epsParam, posInt, stepParam } from './params';
import { pgdLinf, pgdRandomStart } from './pgd';

const schema = z
  .object({
    eps: epsParam(0.03),
    alpha: stepParam().optional(),
    steps: posInt(10),
    randomStart: z.boolean().default(true),
  })
  .strict()
  .transform((p) => ({ ...p, alpha: p.alpha ?? pgdStepSize(p.eps, p.steps) }));
export type PgdAdParams = z.output<typeof schema>;

export const pgdAd = defineAttack<PgdAdParams>({
  name: 'pgd-ad',
  description: "Adaptive PGD: ascends CE plus the IB-RAR objective's HSIC terms (needs an IB-trained model)",
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const { target, rng, extraLoss } = ctx;
    if (!extraLoss) {
      throw new UserError(
        "attack 'pgd-ad' (adaptive) ascends the IB-RAR objective and needs an IB-trained model's objective (ib.enabled with layers); this model has none — use 'pgd' instead",
      );
    }
    const yOh = oneHot(y, target.numClasses);
    const start = p.randomStart ? pgdRandomStart(rng, x, p.eps) : undefined;
    try {
      const xAdv = await pgdLinf(ctx, x, yOh, {
        eps: p.eps,
        alpha: p.alpha,
        steps: p.steps,
        start,
        loss: (xa) => tf.add(ceMean(target.logits(xa), yOh), extraLoss(xa, x, yOh)) as tf.Scalar,
      });
      return { xAdv };
    } finally {
      tf.dispose([yOh, ...(start ? [start] : [])]);
    }
  },
});
