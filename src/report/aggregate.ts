// Aggregating runs into table rows: runs are grouped by config name minus a seed suffix
// (`-s1`, `_seed2`, …), each group's cell is mean ± sample standard deviation (n − 1) over its
// runs. Also names the paper's ablation row (Table 4) a config implements.
import type { ExperimentConfig } from '../config/schema';
import { configHash } from '../runs/config-hash';
import { metricOf, type EvalFile } from './runs';

export interface RunEntry {
  runDir: string;
  config: ExperimentConfig;
  eval: EvalFile | null;
}

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
  runs: string[];
  seeds: number[];
  evalFiles: string[];
  /** Per column key; null when no run of the group has that number. */
  cells: Record<string, Cell | null>;
  notes: string[];
  ablation: AblationRow | null;
  /** Config keys (other than seed/name) whose values differ between the group's runs, and a
   *  differing evaluation ε. */
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

/** Rows in order of first appearance; each cell aggregates the runs that have the number. */
export function aggregateRuns(runs: readonly RunEntry[], columns: readonly string[]): GroupRow[] {
  const groups = new Map<string, RunEntry[]>();
  for (const r of runs) {
    const key = groupName(r.config.name);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(r);
  }
  const rows: GroupRow[] = [];
  for (const [key, members] of groups) {
    const cells: Record<string, Cell | null> = {};
    for (const c of columns) {
      const values = members.map((m) => (m.eval ? metricOf(m.eval.report, c) : null)).filter((v): v is number => v !== null);
      cells[c] = values.length ? { ...meanStd(values), n: values.length, values } : null;
    }
    const configs = members.map((m) => m.config);
    const hashes = new Set(configs.map((c) => configHash(comparable(c))));
    const epsSeen = [...new Set(members.filter((m) => m.eval).map((m) => m.eval!.report.eps))];
    const differs = hashes.size > 1 ? differingKeys(configs) : [];
    if (epsSeen.length > 1) differs.push(`evaluation ε (${epsSeen.join(', ')})`);
    rows.push({
      key,
      label: key,
      runs: members.map((m) => m.runDir),
      seeds: members.map((m) => m.config.seed),
      evalFiles: members.map((m) => m.eval?.file ?? ''),
      cells,
      notes: [...new Set(configs.flatMap(configNotes))],
      ablation: ablationRow(configs[0]),
      differs,
    });
  }
  return rows;
}
