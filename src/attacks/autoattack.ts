// AutoAttack 'standard' (Croce & Hein 2020): APGD-CE → APGD-T → FAB-T → Square, each run
// only on the points every earlier attack left correctly classified; per example the first
// successful adversarial point is kept. Parameters as AutoAttack standard for L∞: ε 8/255,
// 100 iterations and 1 restart for APGD/FAB, 9 target classes (capped at K − 1), Square with
// 5000 queries, p_init 0.8 and no schedule rescaling.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { gatherRows, indicesWhere, labelsOf, mergeRows, predict, swap } from './common';
import { apgdAttack } from './apgd-core';
import { fabAttack } from './fab-core';
import { defineAttack, epsParam, posInt } from './params';
import { squareAttack } from './square';
import type { AttackTarget } from './types';

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

async function runPart(part: Part, target: AttackTarget, rng: Rng, x: tf.Tensor4D, y: tf.Tensor1D, p: AutoAttackParams): Promise<tf.Tensor4D> {
  const apgd = { eps: p.eps, steps: p.steps, restarts: 1, rho: p.rho };
  const fab = { eps: p.eps, steps: p.steps, restarts: 1, alphaMax: 0.1, eta: 1.05, beta: 0.9 };
  switch (part) {
    case 'apgd-ce':
      return apgdAttack(target, rng, x, y, { ...apgd, loss: 'ce' });
    case 'apgd-dlr':
      return apgdAttack(target, rng, x, y, { ...apgd, loss: 'dlr' });
    case 'apgd-t':
      return apgdAttack(target, rng, x, y, { ...apgd, loss: 'dlr-targeted' }, p.nTargets);
    case 'fab':
      return fabAttack(target, rng, x, y, fab, null);
    case 'fab-t':
      return fabAttack(target, rng, x, y, fab, p.nTargets);
    case 'square':
      return (await squareAttack(target, rng, x, y, { eps: p.eps, queries: p.queries, pInit: p.pInit, restarts: 1, loss: 'margin', rescaleSchedule: false })).xAdv;
  }
}

export const autoattack = defineAttack<AutoAttackParams>({
  name: 'autoattack',
  description: 'AutoAttack standard ensemble: APGD-CE, APGD-T, FAB-T, Square; worst case per example (Croce & Hein 2020)',
  norm: 'linf',
  schema,
  attack: async ({ target, rng }, x, y, p) => {
    const labels = await labelsOf(y);
    const clean = await predict(target, x);
    const robust = Array.from(clean, (v, i) => v === labels[i]);
    const n = labels.length;
    const extra: Record<string, number> = { 'robust.clean': robust.filter(Boolean).length / n };
    let out = tf.clone(x);
    for (const part of p.attacks) {
      const idx = indicesWhere(robust);
      if (idx.length > 0) {
        const xs = gatherRows(x, idx);
        const ys = tf.tensor1d(Array.from(idx, (i) => labels[i]), 'int32');
        const adv = await runPart(part, target, rng.fork(part), xs, ys, p);
        const pred = await predict(target, adv);
        const rows = indicesWhere(Array.from(pred, (v, j) => v !== labels[idx[j]]));
        const take = rows.map((j) => idx[j]);
        take.forEach((i) => (robust[i] = false));
        const picked = gatherRows(adv, rows);
        out = swap(out, mergeRows(out, picked, take));
        tf.dispose([xs, ys, adv, picked]);
      }
      extra[`robust.${part}`] = robust.filter(Boolean).length / n;
    }
    return { xAdv: out, extra };
  },
});
