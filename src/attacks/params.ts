// Parameter schemas shared by the attacks, and `defineAttack`, which turns a schema and a
// function into an `Attack` whose `run` validates what it is given.
import { z } from 'zod';
import { fraction } from '../config/schema';
import { UserError } from '../errors';
import type { tf } from '../engine/tf';
import type { Attack, AttackContext, AttackNorm, AttackResult } from './types';
import type { DistanceNorm } from './types';

/** Said of an L∞ budget above 1, whichever way it came (config, --eps, --param). */
export const LINF_EPS_MESSAGE = 'ε is an L∞ budget on pixels in [0, 1]; write 8/255, not 8';

/**
 * An L∞ budget: a number or a fraction string such as "8/255", in [0, 1] — the bounds the
 * config's eval.eps and `--eps` enforce, so `--param pgd.eps=5` is refused like `--eps 5`.
 */
export function epsParam(def: number) {
  return fraction.refine((v) => v >= 0, 'must be ≥ 0').refine((v) => v <= 1, LINF_EPS_MESSAGE).default(def);
}

/** An L2 budget (no upper bound short of the image's diameter): a number or fraction, ≥ 0. */
export function l2EpsParam(def: number) {
  return fraction.refine((v) => v >= 0, 'must be ≥ 0').default(def);
}

/** For attacks whose norm is a parameter: in L∞ the budget is at most 1, as epsParam. */
export function checkLinfBudget(p: { norm?: string; eps?: number }, ctx: z.RefinementCtx): void {
  if (p.norm === 'Linf' && p.eps !== undefined && p.eps > 1) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['eps'], message: LINF_EPS_MESSAGE });
}

/** A step size: a positive number or a fraction string such as "2/255". */
export function stepParam() {
  return fraction.refine((v) => v > 0, 'must be > 0');
}

export const posInt = (def: number) => z.number().int().positive().default(def);
export const posNum = (def: number) => z.number().positive().finite().default(def);

/** Validate attack parameters; bad input is a UserError naming the attack and the key. */
export function parseAttackParams<P>(name: string, schema: z.ZodType<P, z.ZodTypeDef, unknown>, raw: unknown): P {
  const res = schema.safeParse(raw ?? {});
  if (res.success) return res.data;
  const issue = res.error.issues[0];
  const where = [name, ...issue.path.map(String)].join('.');
  const keys = issue.code === 'unrecognized_keys' ? ` (valid: ${validKeys(schema).join(', ')})` : '';
  throw new UserError(`attack parameter ${where}: ${issue.message}${keys}`, undefined, where);
}

/** The parameter names an attack's schema accepts. */
export function validKeys(schema: z.ZodTypeAny): string[] {
  let s: z.ZodTypeAny = schema;
  while (s instanceof z.ZodEffects) s = s.innerType();
  return s instanceof z.ZodObject ? Object.keys(s.shape as object) : [];
}

export interface AttackSpec<P> {
  name: string;
  description: string;
  norm: AttackNorm;
  /** For attacks whose norm is a parameter (see Attack.normOf). */
  normOf?: (params: P) => DistanceNorm;
  schema: z.ZodType<P, z.ZodTypeDef, unknown>;
  attack(ctx: AttackContext, x: tf.Tensor4D, y: tf.Tensor1D, params: P): Promise<AttackResult> | AttackResult;
}

export function defineAttack<P>(spec: AttackSpec<P>): Attack<P> {
  return {
    name: spec.name,
    description: spec.description,
    norm: spec.norm,
    ...(spec.normOf ? { normOf: spec.normOf } : {}),
    defaults: spec.schema.parse({}),
    paramsSchema: spec.schema,
    run: async (ctx, x, y, params) => {
      if (x.rank !== 4 || y.rank !== 1 || x.shape[0] !== y.shape[0]) {
        throw new Error(`attack ${spec.name}: expected x [n,h,w,c] and y [n], got ${JSON.stringify(x.shape)} and ${JSON.stringify(y.shape)}`);
      }
      return spec.attack(ctx, x, y, parseAttackParams(spec.name, spec.schema, params));
    },
  };
}

/**
 * The norm an attack runs in with these (parsed) parameters: the `norm` parameter of attacks
 * that have one (Linf / L2 / L1), else the attack's own.
 */
export function normOfParams(attack: Attack<unknown>, params: Record<string, unknown>): AttackNorm | 'l1' {
  if (attack.normOf) return attack.normOf(params);
  if (typeof params.norm === 'string') return params.norm.toLowerCase() as 'linf' | 'l2' | 'l1';
  return attack.norm;
}
