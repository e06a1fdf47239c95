// Expanding a sweep file into cells: the product of the axes (first axis slowest), minus the
// `exclude` rules, plus the `include` cells, each a complete experiment config validated before
// anything runs. Every problem of every cell is collected and reported at once.
//
// A cell's id is a short hash of its resolved config without what the sweep sets itself
// (name, runsDir, threads), so it does not depend on key order in the files, on where the sweep
// runs, or on how many threads it gets. Its name is `<base name>-<axis values>` with the seed
// last as `-s<k>`, the suffix `ibrar report` strips to average over seeds.
import * as fs from 'fs';
import * as path from 'path';
import { readYamlFile, validateConfig, findNonFinite } from '../../config/load';
import { experimentObject, type ExperimentConfig } from '../../config/schema';
import { RESERVED_PATHS, evalOverride, slurmSchema, sweepSchema, type SweepFile } from '../../config/sweep-schema';
import { UserError } from '../../errors';
import { canonicalJson, configHash } from '../../runs/config-hash';
import { resolveLayers } from '../../ib';
import { checkConfigAttacks } from '../open-run';
import { modelTaps } from '../probe/candidates';

export interface LoadedSweep {
  /** The sweep file (absent for an inline definition). */
  file?: string;
  sweep: SweepFile;
  /** The base config as a raw document (a path in `base` is read relative to the sweep file). */
  baseDoc: Record<string, unknown>;
  /** Names the sweep folder. */
  name: string;
  /** Folder holding `<name>-sweep/` (the base config's runsDir). */
  runsDir: string;
}

export interface SweepCell {
  /** Position in the expanded grid: the Slurm array index and `ibrar sweep --cell INDEX`. */
  index: number;
  id: string;
  name: string;
  /** The values this cell sets: every axis (in axis order), then an include rule's other keys. */
  values: Record<string, unknown>;
  origin: 'grid' | 'include';
  /** The resolved config, before the sweep sets runsDir and threads. */
  config: ExperimentConfig;
}

export interface ExpandedGrid {
  cells: SweepCell[];
  /** The key paths shown for every cell (axes, then include-only keys). */
  columns: string[];
  /** Dropped duplicates, exclude rules that matched nothing. */
  notes: string[];
}

const ID_LENGTH = 12;

function formatIssuePath(issuePath: readonly (string | number)[]): string {
  return issuePath.length ? issuePath.join('.') : '(top level)';
}

/** Read and check a sweep file; `base` is read relative to it. */
export function loadSweepFile(file: string): LoadedSweep {
  const doc = readYamlFile(file);
  return resolveSweep(doc, file);
}

/** Check a sweep definition (a parsed document) and read its base config. */
export function resolveSweep(doc: unknown, file?: string): LoadedSweep {
  const where = file ?? '<sweep>';
  const bad = findNonFinite(doc);
  if (bad) throw new UserError(`expected a finite number, found ${bad.value}`, where, bad.path);
  const res = sweepSchema.safeParse(doc);
  if (!res.success) {
    const lines = res.error.issues.map((i) => {
      const at = formatIssuePath(i.path);
      const msg = i.code === 'unrecognized_keys' ? `unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.join(', ')}; valid keys: ${validSweepKeys(i.path)}` : i.message;
      return `${at}: ${msg}`;
    });
    throw new UserError(`invalid sweep file:\n  ${lines.join('\n  ')}`, where);
  }
  const sweep = res.data;
  let baseDoc: Record<string, unknown>;
  if (typeof sweep.base === 'string') {
    const baseFile = path.resolve(file ? path.dirname(file) : '.', sweep.base);
    if (!fs.existsSync(baseFile)) throw new UserError(`the base config ${baseFile} does not exist (a path in 'base' is relative to the sweep file)`, where, 'base');
    baseDoc = readYamlFile(baseFile) as Record<string, unknown>;
  } else baseDoc = structuredClone(sweep.base);
  const reserved = [...Object.keys(sweep.axes).map((k) => ['axes', k]), ...sweep.include.flatMap((r, i) => Object.keys(r).map((k) => [`include.${i}`, k]))].filter(([, k]) =>
    (RESERVED_PATHS as readonly string[]).some((r) => k === r || k.startsWith(r + '.')),
  );
  if (reserved.length) {
    throw new UserError(
      `${reserved.map(([w, k]) => `${w}: '${k}'`).join(', ')}: the sweep sets name, runsDir and threads of every cell itself (set 'name' or 'threads' at the top of the sweep file, runsDir in the base config)`,
      where,
    );
  }
  const axes = Object.keys(sweep.axes);
  for (const a of axes) {
    const clash = axes.find((b) => b !== a && b.startsWith(a + '.'));
    if (clash) throw new UserError(`axes '${a}' and '${clash}' overlap (one is inside the other)`, where, `axes.${clash}`);
  }
  sweep.exclude.forEach((r, i) => {
    const foreign = Object.keys(r).filter((k) => !axes.includes(k));
    if (foreign.length) throw new UserError(`exclude rules match axis values; ${foreign.map((k) => `'${k}'`).join(', ')} ${foreign.length > 1 ? 'are not axes' : 'is not an axis'} (axes: ${axes.join(', ') || 'none'})`, where, `exclude.${i}`);
  });
  const name = sweep.name ?? (typeof baseDoc.name === 'string' ? baseDoc.name : undefined);
  if (!name) throw new UserError("the sweep needs a name: set 'name' in the sweep file or in its base config", where);
  const runsDir = experimentObject.shape.runsDir.safeParse(baseDoc.runsDir);
  if (!runsDir.success) throw new UserError('runsDir in the base config must be a string', where, 'base.runsDir');
  return { file, sweep, baseDoc, name, runsDir: runsDir.data };
}

function validSweepKeys(at: readonly (string | number)[]): string {
  if (at.length === 1 && at[0] === 'slurm') return Object.keys(slurmSchema.shape).join(', ');
  if (at.length === 1 && at[0] === 'eval') return Object.keys(evalOverride.shape).join(', ');
  return Object.keys(sweepSchema.shape).join(', ');
}

/** Set `value` at a dotted key path, creating sections; an error names the key that is not a section. */
function setPath(doc: Record<string, unknown>, keyPath: string, value: unknown): void {
  const keys = keyPath.split('.');
  let node = doc;
  for (let i = 0; i < keys.length - 1; i++) {
    const next = node[keys[i]];
    if (next === undefined || next === null) node[keys[i]] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) {
      throw new UserError(`'${keys.slice(0, i + 1).join('.')}' is ${Array.isArray(next) ? 'a list' : `the value ${JSON.stringify(next)}`}, not a section, so '${keyPath}' does not exist`);
    }
    node = node[keys[i]] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]] = structuredClone(value);
}

function getPath(doc: unknown, keyPath: string): unknown {
  let node = doc;
  for (const k of keyPath.split('.')) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[k];
  }
  return node;
}

const same = (a: unknown, b: unknown) => canonicalJson(a ?? null) === canonicalJson(b ?? null);

/** The id of a cell's config: what the sweep sets itself (name, runsDir, threads) left out. */
export function cellId(cfg: ExperimentConfig): string {
  return configHash({ ...cfg, name: undefined, runsDir: undefined, threads: undefined }).slice(0, ID_LENGTH);
}

const sanitize = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_');

/** How one value reads in a cell name: `pgd-at`, `no-ib`, `mask`, `alpha0.1`, `block5_fc1`, `s2`. */
export function valueLabel(keyPath: string, value: unknown): string {
  const segs = keyPath.split('.');
  const last = segs[segs.length - 1];
  if (keyPath === 'seed') return `s${String(value)}`;
  const named = last === 'enabled' && segs.length > 1 ? segs[segs.length - 2] : last;
  if (typeof value === 'boolean') return value ? named : `no-${named}`;
  if (typeof value === 'string') return sanitize(value);
  if (typeof value === 'number') return sanitize(`${last}${value}`);
  if (value === null || value === undefined) return `${last}-none`;
  if (Array.isArray(value) && value.every((v) => typeof v === 'string')) return sanitize(value.join('_'));
  if (Array.isArray(value) && value.every((v) => typeof v === 'number')) return sanitize(`${last}${value.join('_')}`);
  return `${last}-${configHash(value).slice(0, 6)}`;
}

function cellName(base: string, values: Record<string, unknown>, extra?: string): string {
  const keys = Object.keys(values).filter((k) => values[k] !== undefined || k !== 'seed');
  const labels = keys.filter((k) => k !== 'seed').map((k) => valueLabel(k, values[k]));
  if (extra) labels.push(extra);
  if (keys.includes('seed')) labels.push(valueLabel('seed', values.seed));
  return [base, ...labels].join('-');
}

interface Draft {
  values: Record<string, unknown>;
  origin: 'grid' | 'include';
  doc: Record<string, unknown>;
}

/** Checks a resolved config beyond its schema: attack names and parameters, IB taps. */
function checkCell(cfg: ExperimentConfig, sweep: SweepFile): void {
  checkConfigAttacks(cfg);
  if (cfg.ib.enabled) {
    try {
      resolveLayers(cfg.ib.layers, modelTaps(cfg.model));
    } catch (err) {
      if (err instanceof UserError) throw new UserError(err.message.replace(/^ib\.layers: /, ''), undefined, 'ib.layers');
      throw err;
    }
  }
  if (sweep.diagnose && cfg.eval.attacks.length === 0) throw new UserError('diagnose: true needs an evaluation: give eval.attacks (in the sweep or the base config)', undefined, 'eval.attacks');
}

/**
 * Every cell of the sweep, validated. Throws one UserError listing every invalid cell (all of
 * them, not just the first) when any is.
 */
export function expandGrid(loaded: LoadedSweep): ExpandedGrid {
  const { sweep, baseDoc } = loaded;
  const axes = Object.entries(sweep.axes);
  const notes: string[] = [];
  const combos: Array<Record<string, unknown>> = [{}];
  for (const [key, values] of axes) {
    const next: Array<Record<string, unknown>> = [];
    for (const c of combos) for (const v of values) next.push({ ...c, [key]: v });
    combos.splice(0, combos.length, ...next);
  }
  const excludeHits = sweep.exclude.map(() => 0);
  const kept = combos.filter((values) => {
    let drop = false;
    sweep.exclude.forEach((rule, i) => {
      if (Object.entries(rule).every(([k, v]) => same(values[k], v))) {
        excludeHits[i]++;
        drop = true;
      }
    });
    return drop === false;
  });
  excludeHits.forEach((n, i) => n === 0 && notes.push(`exclude rule ${i + 1} (${canonicalJson(sweep.exclude[i])}) matches no cell`));

  const makeDoc = (set: Record<string, unknown>): Record<string, unknown> => {
    const doc = structuredClone(baseDoc);
    if (sweep.eval) doc.eval = { ...((doc.eval as Record<string, unknown> | undefined) ?? {}), ...structuredClone(sweep.eval) };
    delete doc.threads;
    for (const [k, v] of Object.entries(set)) setPath(doc, k, v);
    return doc;
  };
  const drafts: Array<Draft | { error: string; values: Record<string, unknown> }> = [];
  const axisKeys = axes.map(([k]) => k);
  for (const values of kept) {
    try {
      drafts.push({ values, origin: 'grid', doc: makeDoc(values) });
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      drafts.push({ error: err.message, values });
    }
  }
  for (const rule of sweep.include) {
    try {
      // The axes it does not set are filled in from the resolved config once it is valid.
      drafts.push({ values: { ...rule }, origin: 'include', doc: makeDoc(rule) });
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      drafts.push({ error: err.message, values: rule });
    }
  }

  const problems: string[] = [];
  const valid: Array<Draft & { config: ExperimentConfig; id: string }> = [];
  drafts.forEach((d, i) => {
    const label = `cell ${i} (${Object.entries(d.values).map(([k, v]) => `${k}=${canonicalJson(v ?? null)}`).join(', ') || 'the base config'})`;
    if ('error' in d) {
      problems.push(`${label}: ${d.error}`);
      return;
    }
    // A placeholder name: the real one is made from the values once the config is valid.
    const doc = { ...d.doc, name: typeof d.doc.name === 'string' && /^[A-Za-z0-9._-]+$/.test(d.doc.name) ? d.doc.name : 'cell' };
    let config: ExperimentConfig;
    try {
      config = validateConfig(doc, label);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      // One line per cell: several problems of one cell are joined.
      problems.push(err.message.replace(/\n\s+/g, '; '));
      return;
    }
    try {
      checkCell(config, sweep);
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push(`${label}: ${err.message}`);
      return;
    }
    if (d.origin === 'include') {
      // An include cell shows every axis (its value in this cell), then the rule's other keys.
      const values: Record<string, unknown> = {};
      for (const k of axisKeys) values[k] = k in d.values ? d.values[k] : getPath(d.doc, k) ?? getPath(config, k);
      for (const [k, v] of Object.entries(d.values)) if (!(k in values)) values[k] = v;
      d.values = values;
    }
    valid.push({ ...d, config, id: cellId(config) });
  });
  if (problems.length) {
    throw new UserError(`${problems.length} of ${drafts.length} cells are invalid; nothing was run:\n  ${problems.join('\n  ')}`, loaded.file ?? '<sweep>');
  }

  const seen = new Map<string, number>();
  const unique = valid.filter((c, i) => {
    const first = seen.get(c.id);
    if (first !== undefined) {
      notes.push(`cell ${i} (${canonicalJson(c.values)}) has the same config as cell ${first}; run once`);
      return false;
    }
    seen.set(c.id, i);
    return true;
  });
  if (unique.length === 0) throw new UserError('the sweep has no cells (every grid cell is excluded and nothing is included)', loaded.file ?? '<sweep>');

  // Names. Cells whose names differ only in the seed label are averaged by `ibrar report`, so
  // when such cells differ in more than the seed (two axes giving the same label), a short id
  // of their seedless config goes before the seed label.
  const seedless = unique.map((c) => cellId({ ...c.config, seed: 0 }));
  const groups = new Map<string, Set<string>>();
  unique.forEach((c, i) => {
    const key = cellName(loaded.name, { ...c.values, seed: undefined });
    if (!groups.has(key)) groups.set(key, new Set());
    groups.get(key)!.add(seedless[i]);
  });
  const cells: SweepCell[] = unique.map((c, index) => {
    const clash = groups.get(cellName(loaded.name, { ...c.values, seed: undefined }))!.size > 1;
    const name = cellName(loaded.name, c.values, clash ? seedless[index].slice(0, 6) : undefined);
    return { index, id: c.id, name, values: c.values, origin: c.origin, config: { ...c.config, name } };
  });
  const columns = [...new Set(cells.flatMap((c) => Object.keys(c.values)))];
  return { cells, columns, notes };
}

/** Fingerprint of an expanded grid and what runs after training: a re-run with the same one continues the sweep. */
export function gridHash(loaded: LoadedSweep, grid: ExpandedGrid, executor: string): string {
  const s = loaded.sweep;
  return configHash({
    cells: grid.cells.map((c) => [c.id, c.name]),
    diagnose: s.diagnose,
    surrogate: s.surrogate,
    diagnoseN: s.diagnoseN,
    executor,
  });
}
