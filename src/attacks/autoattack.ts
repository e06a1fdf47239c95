// AutoAttack (Croce & Hein 2020; L1: Croce & Hein 2021), as fra31/auto-attack's
// autoattack.py (AutoAttack.__init__, set_version, run_standard_evaluation): a list of attacks
// run in order, each only on the points every earlier attack left correctly classified; per
// example the first successful adversarial point is kept.
//
// `norm` (Linf, L2, L1; ε defaults 8/255, 0.5 (AutoAttack README) and 12 ("Mind the box")) is
// the threat model of every part. `version`:
//   standard: APGD-CE, APGD-T, FAB-T, Square. L∞/L2: APGD-CE 1 restart, APGD-T 9 targets;
//             L1: APGD-CE 5 restarts and APGD-T 5 targets, both with the large-ε schedule.
//             FAB-T 9 targets, 1 restart; Square 5000 queries.
//   plus:     APGD-CE, APGD-DLR (5 restarts each), FAB (5 restarts), Square (5000 queries),
//             APGD-T (9 targets), FAB-T (9 targets). (AutoAttack only warns for L1; so do we not.)
//   rand:     APGD-CE, APGD-DLR, 1 restart each, EOT over 20 stochastic forwards (eot_iter).
//   custom:   the parts listed in `attacks`, with `restarts` (default 1, as ibrar's list always
//             ran; AutoAttack's constructor uses 5) for the untargeted APGD and FAB, and `eot`.
// Common to all: APGD and FAB 100 iterations (`steps`), ρ .75, FAB-T 1 restart, Square p_init
// .8 without schedule rescaling. `attacks` without `version` means custom (how this attack was
// configured before it had versions); `attacks` with another version is an error, as in
// AutoAttack. `nTargets` overrides the target count of APGD-T and FAB-T in any version.
// One quirk is not copied: AutoAttack sets FAB's restarts to 1 for FAB-T and leaves it so, so
// a custom list with FAB-T before FAB runs FAB with 1 restart; here FAB keeps its own.
import { z } from 'zod';
import { tf } from '../engine/tf';
import { apgdAttack } from './apgd-core';
import { Eot, withEotExtra } from './eot';
import { fabAttack } from './fab-core';
import { AUTOATTACK_EPS, epsByNormParam, LP_NORMS, normParam, type LpNorm } from './lp';
import { checkLinfBudget, defineAttack, posInt } from './params';
import { attackRobustRows } from './robust-rows';
import { squareAttack } from './square';
import type { AttackContext } from './types';

export const AUTOATTACK_PARTS = ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab', 'fab-t', 'square'] as const;
export type AutoAttackPart = (typeof AUTOATTACK_PARTS)[number];
export const AUTOATTACK_VERSIONS = ['standard', 'plus', 'rand', 'custom'] as const;
export type AutoAttackVersion = (typeof AUTOATTACK_VERSIONS)[number];

const VERSION_PARTS: Record<Exclude<AutoAttackVersion, 'custom'>, AutoAttackPart[]> = {
  standard: ['apgd-ce', 'apgd-t', 'fab-t', 'square'],
  plus: ['apgd-ce', 'apgd-dlr', 'fab', 'square', 'apgd-t', 'fab-t'],
  rand: ['apgd-ce', 'apgd-dlr'],
};

const optPosInt = () => z.number().int().positive().optional();

const schema = z
  .object({
    norm: normParam(LP_NORMS, 'Linf'),
    /** Default per norm: 8/255 (L∞), 0.5 (L2), 12 (L1). */
    eps: epsByNormParam(),
    /** Default: 'custom' when `attacks` is given, else 'standard'. */
    version: z.enum(AUTOATTACK_VERSIONS).optional(),
    attacks: z.array(z.enum(AUTOATTACK_PARTS)).min(1).optional(),
    steps: posInt(100),
    /** Target classes of APGD-T and FAB-T (default: the version's, 9; APGD-T standard L1: 5). */
    nTargets: optPosInt(),
    /** custom: restarts of APGD-CE, APGD-DLR and FAB (default 1). */
    restarts: optPosInt(),
    /** rand, custom: EOT samples per APGD gradient (default: rand 20, custom 1). */
    eot: optPosInt(),
    queries: posInt(5000),
    pInit: z.number().positive().max(1).default(0.8),
    rho: z.number().min(0).max(1).default(0.75),
  })
  .strict()
  .superRefine((p, ctx) => {
    checkLinfBudget(p, ctx);
    const version = autoAttackVersion(p);
    // (A list equal to the version's own is accepted: that is what `defaults` holds.)
    if (p.attacks && version !== 'custom' && p.attacks.join() !== VERSION_PARTS[version].join()) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['attacks'], message: `lists the attacks of version 'custom'; version '${version}' runs its own (${VERSION_PARTS[version].join(', ')})` });
    }
    if (p.restarts !== undefined && version !== 'custom') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['restarts'], message: `applies to version 'custom'; version '${version}' sets its own restarts` });
    }
    if (p.eot !== undefined && version !== 'custom' && version !== 'rand') {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['eot'], message: `applies to versions 'rand' and 'custom'; version '${version}' runs without EOT` });
    }
  })
  // version and attacks stay as given (absent from `defaults`), so that a caller may merge
  // `{ version: 'plus' }` or an attack list into the defaults; autoAttackPlan resolves them.
  .transform((p) => ({ ...p, eps: p.eps ?? AUTOATTACK_EPS[p.norm] }));
export type AutoAttackParams = z.output<typeof schema>;

/** The version in effect: as given, else 'custom' when `attacks` is given, else 'standard'. */
export function autoAttackVersion(p: { version?: AutoAttackVersion; attacks?: readonly AutoAttackPart[] }): AutoAttackVersion {
  return p.version ?? (p.attacks ? 'custom' : 'standard');
}

/** How one part of the ensemble runs. */
export interface PlanStep {
  part: AutoAttackPart;
  /** Restarts per run (per target class for the targeted parts). */
  restarts: number;
  /** Target classes (apgd-t, fab-t). */
  nTargets?: number;
  /** APGD: L1 large-ε schedule. */
  largeReps?: boolean;
  /** APGD: EOT samples per gradient. */
  eot?: number;
  /** APGD and FAB iterations; Square queries. */
  iterations: number;
}

/** The parts and settings AutoAttack's set_version (or the custom list) gives. */
export function autoAttackPlan(p: Pick<AutoAttackParams, 'norm' | 'version' | 'attacks' | 'steps' | 'nTargets' | 'restarts' | 'eot' | 'queries'>): PlanStep[] {
  const { norm } = p;
  const version = autoAttackVersion(p);
  const parts = version === 'custom' ? p.attacks! : VERSION_PARTS[version];
  const l1Standard = version === 'standard' && norm === 'L1';
  const apgdRestarts = version === 'plus' ? 5 : version === 'custom' ? (p.restarts ?? 1) : l1Standard ? 5 : 1;
  const apgdEot = version === 'rand' ? (p.eot ?? 20) : version === 'custom' ? (p.eot ?? 1) : 1;
  const fabRestarts = version === 'plus' ? 5 : version === 'custom' ? (p.restarts ?? 1) : 1;
  return parts.map((part): PlanStep => {
    switch (part) {
      case 'apgd-ce':
      case 'apgd-dlr':
        return { part, restarts: apgdRestarts, largeReps: l1Standard, eot: apgdEot, iterations: p.steps };
      case 'apgd-t':
        return { part, restarts: 1, nTargets: p.nTargets ?? (l1Standard ? 5 : 9), largeReps: l1Standard, eot: version === 'custom' ? apgdEot : 1, iterations: p.steps };
      case 'fab':
        return { part, restarts: fabRestarts, iterations: p.steps };
      case 'fab-t':
        return { part, restarts: 1, nTargets: p.nTargets ?? 9, iterations: p.steps };
      case 'square':
        return { part, restarts: 1, iterations: p.queries };
    }
  });
}

async function runPart(step: PlanStep, ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, p: AutoAttackParams, eot: Eot | undefined): Promise<tf.Tensor4D> {
  const norm: LpNorm = p.norm;
  const apgd = { eps: p.eps, steps: step.iterations, restarts: step.restarts, rho: p.rho, norm, largeReps: step.largeReps, eot };
  const fab = { eps: p.eps, steps: step.iterations, restarts: step.restarts, alphaMax: 0.1, eta: 1.05, beta: 0.9, norm };
  switch (step.part) {
    case 'apgd-ce':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'ce' });
    case 'apgd-dlr':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'dlr' });
    case 'apgd-t':
      return apgdAttack(ctx, x, y, { ...apgd, loss: 'dlr-targeted' }, step.nTargets);
    case 'fab':
      return fabAttack(ctx, x, y, fab, null);
    case 'fab-t':
      return fabAttack(ctx, x, y, fab, step.nTargets!);
    case 'square':
      return (await squareAttack(ctx, x, y, { eps: p.eps, norm, queries: step.iterations, pInit: p.pInit, restarts: 1, loss: 'margin', rescaleSchedule: false })).xAdv;
  }
}

export const autoattack = defineAttack<AutoAttackParams>({
  name: 'autoattack',
  description: 'AutoAttack (standard: APGD-CE, APGD-T, FAB-T, Square; also plus, rand (EOT), custom; L∞, L2 or L1); worst case per example (Croce & Hein 2020, 2021)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const plan = autoAttackPlan(p);
    const eots: Eot[] = [];
    const attempts = plan.map((step) => async (xs: tf.Tensor4D, ys: Int32Array) => {
      const yT = tf.tensor1d(ys, 'int32');
      const partCtx = { ...ctx, rng: ctx.rng.fork(step.part) };
      const eot = step.eot !== undefined && step.eot > 1 ? Eot.of(partCtx, step.eot) : undefined;
      if (eot) eots.push(eot);
      try {
        return { xAdv: await runPart(step, partCtx, xs, yT, p, eot) };
      } finally {
        yT.dispose();
      }
    });
    const res = await attackRobustRows(ctx.target, x, y, attempts);
    const extra: Record<string, number> = { 'robust.clean': res.robustFraction[0] };
    plan.forEach((step, k) => (extra[`robust.${step.part}`] = res.robustFraction[k + 1]));
    const out = { xAdv: res.xAdv, extra };
    return eots.length > 0 ? withEotExtra(out, eots[0]) : out;
  },
});
