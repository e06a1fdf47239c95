// AutoAttack 'standard' (Croce & Hein 2020): APGD-CE → APGD-T → FAB-T → Square, each run
// only on the points every earlier attack left correctly classified; per example the first
// successful adversarial point is kept. Parameters as AutoAttack standard for L∞: ε 8/255,
// 100 iterations and 1 restart for APGD/FAB, 9 target classes (capped at K − 1), Square with
// 5000 queries, p_init 0.8 and no schedule rescaling.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { apgdAttack } from './apgd-core';
import { fabAttack } from './fab-core';
import { defineAttack, epsParam, posInt } from './params';
import { attackRobustRows } from './robust-rows';
import { squareAttack } from './square';
import type { AttackContext } from './types';

export const AUTOATTACK_PARTS = ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab', 'fab-t', 'square'] as const;
type Part = (typeof AUTOATTACK_PARTS)[number];

const schema = z
  .object({
    eps: epsParam(8 / 255),
    steps: posInt(100),
    nTargets: posInt(9),
    queries: posInt(5000),
    pInit: z.number().positive().max(1).default(0.8),
    rho: z.number().min(0).max(1).default(0.75),
    attacks: z.array(z.enum(AUTOATTACK_PARTS)).min(1).default(['apgd-ce', 'apgd-t', 'fab-t', 'square']),
  })
  .strict();
export type AutoAttackParams = z.output<typeof schema>;

async function runPart(part: Part, ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: AutoAttackParams): Promise<tf.Tensor4D> {
  const apgd = { eps: p.eps, steps: p.steps, restarts: 1, rho: p.rho };
  const fab = { eps: p.eps, steps: p.steps, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9 };
  switch (part) {
    case 'apgd-ce':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'ce' });
    case 'apgd-dlr':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'dlr' });
    case 'apgd-t':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'dlr-targeted' }, p.nTargets);
    case 'fab':
      return fabAttack(ctx, x, y, fab, null);
    case 'fab-t':
      return fabAttack(ctx, x, y, fab, p.nTargets);
    case 'square':
      return (await squareAttack(ctx, x, y, { eps: p.eps, queries: p.queries, pInit: p.pInit, restarts: 1, loss: 'margin', rescaleSchedule: false })).xAdv;
  }
}

export const autoattack = defineAttack<AutoAttackParams>({
  name: 'autoattack',
  description: 'AutoAttack standard ensemble: APGD-CE, APGD-T, FAB-T, Square; worst case per example (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const attempts = p.attacks.map((part) => async (xs: tf.Tensor4D, ys: Int32Array) => {
      const yT = tf.tensor1d(ys, 'int32');
      try {
        return { xAdv: await runPart(part, { ...ctx, rng: ctx.rng.fork(part) }, xs, yT, p) };
      } finally {
        yT.dispose();
      }
    });
    const res = await attackRobustRows(ctx.target, x, y, attempts);
    const extra: Record<string, number> = { 'robust.clean': res.robustFraction[0] };
    p.attacks.forEach((part, k) => (extra[`robust.${part}`] = res.robustFraction[k + 1]));
    return { xAdv: res.xAdv, extra };
  },
});
