// Aggregating runs into table rows: runs are grouped by config name minus a seed suffix
// (`-s1`, `_seed2`, …), each group's cell is mean ± sample standard deviation (n − 1) over its
// runs. Also names the paper's ablation row (Table 4) a config implements.
import type { ExperimentConfig } from '../config/schema';
import { configHash } from '../runs/config-hash';
import { UserError } from '../errors';
import type { EvalFile } from './runs';

export interface Cell {
  mean: number;
  /** Sample standard deviation (n − 1); 0 for a single run. */
  std: number;
  n: number;
  values: number[];
}

export interface AblationRow {
  index: number;
  /** Plain-text formula, e.g. `L_CE − β ΣI(Y,T)`. */
  formula: string;
  /** The same in LaTeX. */
  latex: string;
}

export interface GroupRow {
  key: string;
  label: string;
  /** The evaluation budget and size of the row's numbers (rows never mix them). */
  eps: number;
  n: number;
  runs: string[];
  seeds: number[];
  evalFiles: string[];
  /** Per column key; null when no run of the group has that number (or their attack parameters differ). */
  cells: Record<string, Cell | null>;
  /** The gradient-masking verdicts of the row's runs that were diagnosed. */
  verdicts: Array<'supported' | 'suspect'>;
  notes: string[];
  ablation: AblationRow | null;
  /** Config keys (other than seed/name) whose values differ between the group's runs, and columns whose attack parameters differ. */
  differs: string[];
}

const SEED_SUFFIX = /[-_.](?:seed|s)[-_]?\d+$/i;

/** Config name without a trailing seed marker: `cifar10-vgg16-pgd-s2` → `cifar10-vgg16-pgd`. */
export function groupName(name: string): string {
  const stripped = name.replace(SEED_SUFFIX, '');
  return stripped || name;
}

export function meanStd(values: readonly number[]): { mean: number; std: number } {
  const n = values.length;
  if (n === 0) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n === 1) return { mean, std: 0 };
  const ss = values.reduce((a, v) => a + (v - mean) * (v - mean), 0);
  return { mean, std: Math.sqrt(ss / (n - 1)) };
}

/** The Table 4 row a config is (no adversarial training assumed), or null. */
export function ablationRow(cfg: ExperimentConfig): AblationRow | null {
  const ib = cfg.ib.enabled;
  const mask = cfg.ib.mask.enabled;
  const a = cfg.ib.alpha > 0;
  const b = cfg.ib.beta > 0;
  if (cfg.train.method !== 'ce') return null;
  if (!ib && !mask) return { index: 1, formula: 'L_CE', latex: '$\\mathcal{L}_{CE}$' };
  if (!ib && mask) return { index: 5, formula: 'L_CE + FC', latex: '$\\mathcal{L}_{CE}$ + FC' };
  if (a && b) return mask ? { index: 6, formula: 'L + FC (IB-RAR)', latex: '$\\mathcal{L}$ + FC (IB-RAR)' } : { index: 2, formula: 'L', latex: '$\\mathcal{L}$' };
  if (mask) return null;
  if (a) return { index: 3, formula: 'L_CE + α ΣI(X,T)', latex: '$\\mathcal{L}_{CE} + \\alpha \\sum I(X,T)$' };
  if (b) return { index: 4, formula: 'L_CE − β ΣI(Y,T)', latex: '$\\mathcal{L}_{CE} - \\beta \\sum I(Y,T)$' };
  return null;
}

/** Notes a reader needs to interpret a row (VIB's sampling, HBaR's weights). */
export function configNotes(cfg: ExperimentConfig): string[] {
  const notes: string[] = [];
  if (cfg.model.head === 'vib') {
    const s = cfg.model.vib!.samples;
    notes.push(
      `VIB: evaluated as log of the mean of ${s} softmaxes (fixed noise); attacks differentiate through the ${s}-sample average`,
    );
  }
  if (cfg.train.method === 'hbar' && cfg.train.hbar) {
    const h = cfg.train.hbar;
    notes.push(`HBaR on ${h.base}: λx = ${h.lambdaX}, λy = ${h.lambdaY}, layers ${Array.isArray(h.layers) ? h.layers.join(', ') : h.layers}, clean taps`);
  }
  return notes;
}

/** The config without what legitimately differs between seeds of one experiment. */
function comparable(cfg: ExperimentConfig): Record<string, unknown> {
  const { seed: _s, name: _n, runsDir: _r, backend: _b, eval: _e, ...rest } = cfg;
  void _s;
  void _n;
  void _r;
  void _b;
  void _e;
  return rest;
}

function differingKeys(configs: readonly ExperimentConfig[]): string[] {
  if (configs.length < 2) return [];
  const flat = (o: unknown, prefix: string, out: Record<string, string>): Record<string, string> => {
    if (o && typeof o === 'object' && !Array.isArray(o)) {
      for (const [k, v] of Object.entries(o as Record<string, unknown>)) flat(v, prefix ? `${prefix}.${k}` : k, out);
    } else out[prefix] = JSON.stringify(o);
    return out;
  };
  const maps = configs.map((c) => flat(comparable(c), '', {}));
  const keys = new Set(maps.flatMap((m) => Object.keys(m)));
  return [...keys].filter((k) => maps.some((m) => m[k] !== maps[0][k])).sort();
}

/** One run's evaluations at one (ε, n): what a table row aggregates. */
export interface RunSlice {
  runDir: string;
  config: ExperimentConfig;
  eps: number;
  n: number;
  /** Its evaluation reports at that (ε, n), newest first. */
  evals: EvalFile[];
}

/**
 * A column: `natural`, `worst_case`, `diagnostics` (the gradient-masking verdict), or an attack
 * with optional parameter values it must have been run with, e.g. `pgd:steps=50`.
 */
export interface ColumnSpec {
  key: string;
  attack: string;
  match: Record<string, string | number | boolean>;
}

export function parseColumn(spec: string): ColumnSpec {
  const [attack, ...pairs] = spec.split(':').map((s) => s.trim());
  const match: ColumnSpec['match'] = {};
  for (const p of pairs) {
    const m = /^([A-Za-z0-9_]+)=(.+)$/.exec(p);
    if (!m) throw new UserError(`expected attack:key=value, found '${spec}'`, undefined, '--columns');
    const v = m[2];
    match[m[1]] = v === 'true' ? true : v === 'false' ? false : Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return { key: spec.trim(), attack, match };
}

function matches(params: Record<string, unknown>, match: ColumnSpec['match']): boolean {
  return Object.entries(match).every(([k, v]) => (typeof v === 'number' && typeof params[k] === 'number' ? Math.abs((params[k] as number) - v) < 1e-12 : params[k] === v));
}

/**
 * The eval (newest first) that has this column, and its number. `claimed`: the parameter sets
 * of the table's other columns of the same attack — a bare `pgd` beside `pgd:steps=50` never
 * shows the 50-step result under the bare name.
 */
export function sliceValue(slice: RunSlice, col: ColumnSpec, claimed: readonly ColumnSpec['match'][] = []): { value: number; file: string; params?: Record<string, unknown> } | null {
  for (const e of slice.evals) {
    if (col.attack === 'natural') return { value: e.report.clean_acc, file: e.file };
    if (col.attack === 'worst_case') return { value: e.report.worst_case_acc, file: e.file };
    const a = e.report.attacks.find((s) => s.attack === col.attack && matches(s.params, col.match) && !claimed.some((m) => matches(s.params, m)));
    if (a) return { value: a.robust_acc, file: e.file, params: a.params };
  }
  return null;
}

/** Rows (config group, ε, n) in order of first appearance; each cell aggregates the runs that have the number. */
export function aggregateSlices(slices: readonly RunSlice[], columns: readonly ColumnSpec[], verdictOf: (s: RunSlice) => 'supported' | 'suspect' | null): GroupRow[] {
  const groups = new Map<string, RunSlice[]>();
  for (const s of slices) {
    const key = `${groupName(s.config.name)}|${s.eps}|${s.n}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(s);
  }
  const rows: GroupRow[] = [];
  for (const [key, members] of groups) {
    const cells: Record<string, Cell | null> = {};
    const differs: string[] = [];
    for (const c of columns) {
      if (c.attack === 'diagnostics') continue;
      // A column with fewer parameters than another of the same attack leaves that one's results to it.
      const claimed = columns.filter((o) => o !== c && o.attack === c.attack && Object.keys(o.match).length > Object.keys(c.match).length).map((o) => o.match);
      const hits = members.map((m) => sliceValue(m, c, claimed)).filter((v): v is NonNullable<typeof v> => v !== null);
      // Never average numbers made with different attack parameters (steps, restarts, …).
      const sigs = new Set(hits.map((h) => JSON.stringify(h.params ?? {})));
      if (sigs.size > 1) {
        differs.push(`${c.key} parameters`);
        cells[c.key] = null;
        continue;
      }
      const values = hits.map((h) => h.value);
      cells[c.key] = values.length ? { ...meanStd(values), n: values.length, values } : null;
    }
    const configs = members.map((m) => m.config);
    const hashes = new Set(configs.map((c) => configHash(comparable(c))));
    if (hashes.size > 1) differs.unshift(...differingKeys(configs));
    const verdicts = members.map(verdictOf).filter((v): v is 'supported' | 'suspect' => v !== null);
    const name = groupName(members[0].config.name);
    rows.push({
      key,
      label: name,
      eps: members[0].eps,
      n: members[0].n,
      runs: members.map((m) => m.runDir),
      seeds: members.map((m) => m.config.seed),
      evalFiles: [...new Set(members.flatMap((m) => m.evals.slice(0, 1).map((e) => e.file)))],
      cells,
      verdicts,
      notes: [...new Set(configs.flatMap(configNotes))],
      ablation: ablationRow(configs[0]),
      differs,
    });
  }
  return rows;
}
