import { UserError } from '../../errors';
import { ceObjective } from './ce';
import { hbarObjective } from './hbar';
import { vibObjective } from './vib';
import { martObjective } from './mart';
import { pgdAtObjective } from './pgd-at';
import { tradesObjective } from './trades';
import type { Objective } from './types';

const OBJECTIVES: Record<string, Objective> = {
  ce: ceObjective,
  'pgd-at': pgdAtObjective,
  trades: tradesObjective,
  mart: martObjective,
  hbar: hbarObjective,
  vib: vibObjective,
};

export function listObjectives(): string[] {
  return Object.keys(OBJECTIVES);
}

export function getObjective(name: string): Objective {
  const obj = OBJECTIVES[name];
  if (!obj) throw new UserError(`unknown training method '${name}'; expected one of ${listObjectives().join(', ')}`, undefined, 'train.method');
  return obj;
}
