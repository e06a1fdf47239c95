// `ibrar runs diff RUN_A RUN_B [...]`: what differs between runs, side by side (as `dvc exp
// diff` does): the resolved configs' differing keys (dotted paths), then the final metrics
// (metrics.jsonl's last row) and the newest evaluations (the one `runs ls` summarises). With two
// runs a Δ column gives B − A. Reads run dirs only.
import * as path from 'path';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { readMetrics } from '../runs/metrics';
import { EPOCH_COLUMNS } from '../runs/records';
import { isRunDir, readRunConfig } from './runs';
import { alignedTable, newestEvaluation } from './runs-list';

export type DiffValue = string | number | boolean | null;

export interface DiffRow {
  key: string;
  /** One per run, in argument order; null where the run has no such key. */
  values: DiffValue[];
}

export interface RunsDiff {
  runs: Array<{ dir: string; label: string }>;
  /** Config keys (dotted paths; lists compared whole) whose values are not all equal. */
  config: DiffRow[];
  /** metrics.jsonl's last row of each run, every key any of them has. */
  metrics: DiffRow[];
  /** The newest evaluation of each run: which one (file, ε, n, checkpoint), clean, each attack, worst case. */
  eval: DiffRow[];
}

/** `{a: {b: 1, c: [1, 2]}}` → `{'a.b': 1, 'a.c': '[1,2]'}`; absent (undefined) members are left out. */
export function flattenConfig(value: unknown, prefix = '', out: Record<string, DiffValue> = {}): Record<string, DiffValue> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      if (v !== undefined) flattenConfig(v, prefix ? `${prefix}.${k}` : k, out);
    }
    return out;
  }
  if (Array.isArray(value)) out[prefix] = JSON.stringify(value);
  else if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') out[prefix] = value;
  else out[prefix] = String(value);
  return out;
}

function labels(dirs: readonly string[]): string[] {
  const short = dirs.map((d) => path.join(path.basename(path.dirname(d)), path.basename(d)));
  return short.map((s, i) => (short.indexOf(s) === short.lastIndexOf(s) ? s : dirs[i]));
}

function union(lists: ReadonlyArray<readonly string[]>): string[] {
  const out: string[] = [];
  for (const list of lists) for (const k of list) if (!out.includes(k)) out.push(k);
  return out;
}

export function diffRuns(runDirs: readonly string[]): RunsDiff {
  if (runDirs.length < 2) throw new UserError('runs diff compares two or more run directories');
  const dirs = runDirs.map((d) => {
    if (!isRunDir(d)) throw new UserError('not a run directory (config.yaml and checkpoints/ expected)', d);
    return path.resolve(d);
  });
  const cfgs: ExperimentConfig[] = dirs.map(readRunConfig);
  const flat = cfgs.map((c) => flattenConfig(c));
  const config: DiffRow[] = [];
  for (const key of union(flat.map((f) => Object.keys(f))).sort()) {
    const same = flat.every((f) => key in f && f[key] === flat[0][key]);
    if (!same) config.push({ key, values: flat.map((f) => (key in f ? f[key] : null)) });
  }

  const finals = dirs.map((d) => readMetrics(d).at(-1) ?? {});
  const metricKeys = union([EPOCH_COLUMNS.filter((k) => finals.some((f) => k in f)), ...finals.map((f) => Object.keys(f))]);
  const metrics: DiffRow[] = metricKeys.map((key) => ({ key, values: finals.map((f) => (key in f ? (f[key] as DiffValue) : null)) }));

  const evals = dirs.map((d, i) => newestEvaluation(d, cfgs[i]));
  const evalRows: DiffRow[] = [];
  if (evals.some((e) => e !== null)) {
    const info = (get: (e: NonNullable<(typeof evals)[number]>) => DiffValue) => evals.map((e) => (e ? get(e) : null));
    evalRows.push({ key: 'file', values: info((e) => path.basename(e.file)) });
    evalRows.push({ key: 'checkpoint', values: info((e) => `${e.report.checkpoint.tag} (epoch ${e.report.checkpoint.epoch})`) });
    evalRows.push({ key: 'eps', values: info((e) => e.report.eps_str) });
    evalRows.push({ key: 'n', values: info((e) => e.report.n) });
    evalRows.push({ key: 'clean_acc', values: info((e) => e.report.clean_acc) });
    for (const attack of union(evals.map((e) => e?.report.attacks.map((a) => a.attack) ?? []))) {
      evalRows.push({ key: attack, values: info((e) => e.report.attacks.find((a) => a.attack === attack)?.robust_acc ?? null) });
    }
    evalRows.push({ key: 'worst_case_acc', values: info((e) => (e.report.attacks.length ? e.report.worst_case_acc : null)) });
  }
  return { runs: dirs.map((dir, i) => ({ dir, label: labels(dirs)[i] })), config, metrics, eval: evalRows };
}

function cell(v: DiffValue): string {
  if (v === null) return '–';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
  return String(v);
}

function delta(values: readonly DiffValue[]): string {
  const [a, b] = values;
  if (typeof a !== 'number' || typeof b !== 'number') return '';
  const d = b - a;
  return d === 0 ? '0' : `${d > 0 ? '+' : ''}${cell(d)}`;
}

function sections(d: RunsDiff): Array<{ title: string; rows: DiffRow[] }> {
  return [
    { title: `config: ${d.config.length} differing key${d.config.length === 1 ? '' : 's'}`, rows: d.config },
    { title: 'final metrics (last row of metrics.jsonl)', rows: d.metrics },
    { title: 'newest evaluation', rows: d.eval },
  ];
}

/** Plain-text tables (the terminal view). */
export function formatDiff(d: RunsDiff): string {
  const withDelta = d.runs.length === 2;
  const header = ['', ...d.runs.map((r) => r.label), ...(withDelta ? ['Δ'] : [])];
  const right = new Set(d.runs.map((_, i) => i + 1).concat(withDelta ? [d.runs.length + 1] : []));
  return sections(d)
    .map(({ title, rows }) => {
      if (rows.length === 0) return `${title}\n  (none)\n`;
      const body = rows.map((r) => [r.key, ...r.values.map(cell), ...(withDelta ? [delta(r.values)] : [])]);
      return `${title}\n` + alignedTable(header, body, right);
    })
    .join('\n');
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** Markdown tables, one per section. */
export function diffMarkdown(d: RunsDiff): string {
  const withDelta = d.runs.length === 2;
  const header = ['key', ...d.runs.map((r) => r.label), ...(withDelta ? ['Δ'] : [])];
  const line = (cells: readonly string[]) => `| ${cells.map(mdEscape).join(' | ')} |`;
  return sections(d)
    .map(({ title, rows }) => {
      const out = [`### ${title}`, ''];
      if (rows.length === 0) return [...out, '(none)', ''].join('\n');
      out.push(line(header), `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`);
      for (const r of rows) out.push(line([r.key, ...r.values.map(cell), ...(withDelta ? [delta(r.values)] : [])]));
      return [...out, ''].join('\n');
    })
    .join('\n');
}
