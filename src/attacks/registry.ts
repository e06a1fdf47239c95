// Every attack by name. Add an attack: one file exporting it, one line below.
import { UserError } from '../errors';
import { apgdCe } from './apgd-ce';
import { apgdDlr } from './apgd-dlr';
import { apgdT } from './apgd-t';
import { autoattack } from './autoattack';
import { bim } from './bim';
import { cw } from './cw';
import { fab } from './fab';
import { fabT } from './fab-t';
import { fgsm } from './fgsm';
import { nifgsm } from './nifgsm';
import { pgd } from './pgd';
import { pgdAd } from './pgd-ad';
import { pgdL2 } from './pgd-l2';
import { randomNoise } from './random-noise';
import { square } from './square';
import { fmn } from './fmn';
import { deepfool } from './deepfool';
import { mifgsm } from './mifgsm';
import { difgsm } from './difgsm';
import { hopskipjump } from './hopskipjump';
import type { Attack } from './types';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyAttack = Attack<any>;

const ATTACKS: readonly AnyAttack[] = [
  fgsm,
  bim,
  pgd,
  pgdL2,
  nifgsm,
  cw,
  fab,
  fabT,
  apgdCe,
  apgdDlr,
  apgdT,
  square,
  randomNoise,
  autoattack,
  pgdAd,
  fmn,
  deepfool,
  mifgsm,
  difgsm,
  hopskipjump,
];

const BY_NAME = new Map(ATTACKS.map((a) => [a.name, a]));

export function listAttacks(): readonly AnyAttack[] {
  return ATTACKS;
}

export function attackNames(): string[] {
  return ATTACKS.map((a) => a.name);
}

export function getAttack(name: string): AnyAttack {
  const attack = BY_NAME.get(name.trim().toLowerCase());
  if (!attack) throw new UserError(`unknown attack '${name}'; valid attacks: ${attackNames().join(', ')}`);
  return attack;
}

/** "pgd, cw,fgsm" → ['pgd', 'cw', 'fgsm'] (canonical names, duplicates dropped, order kept). */
export function parseAttackList(list: string): string[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UserError(`expected a comma-separated list of attacks, found '${list}'; valid attacks: ${attackNames().join(', ')}`);
  return [...new Set(names.map((n) => getAttack(n).name))];
}
