// `ibrar report`: runs → aggregated paper-style tables in four formats.
import { makeDirs } from '../engine/safe-read';
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { runTimestamp } from '../runs/run-dir';
import { UserError } from '../errors';
import { epsWords } from './svg';
import { aggregateSlices, parseColumn, type ColumnSpec, type GroupRow, type RunSlice } from './aggregate';
import { chooseEvals, findRunDirs, readRunConfig, runFigures } from './runs';
import { readDiagnosticsReport } from '../runs/diagnostics-file';
import { columnHeader, differsNote, layoutColumns, tableCsv, tableLatex, tableMarkdown, type LayoutName, type ReportTable } from './tables';

export interface ReportRequest {
  /** Run directories or folders holding them. */
  paths: string[];
  layout: LayoutName;
  /** Evaluation report to use in every run (file name in eval/ or a path); default: see chooseEval. */
  evalChoice?: string;
  /** Output folder (default reports/<timestamp>). */
  outDir?: string;
  title?: string;
  /** Column specs (`natural`, `pgd`, `pgd:steps=50`, `worst_case`, `diagnostics`); default: the layout's. */
  columns?: string[];
  /** The ε of the rows: a number, `all`, or (default) each run's own eval.eps. */
  eps?: number | 'all';
  /** Also the candidate runs of layer probes (by default they appear only in the probe's own table). */
  includeProbes?: boolean;
}

const TITLES: Record<LayoutName, string> = {
  main: 'Robust accuracy under attacks (layout of the paper’s Tables 1–2)',
  ablation: 'Ablation (layout of the paper’s Table 4)',
  all: 'Robust accuracy under every evaluated attack',
};

function setupLines(rows: readonly GroupRow[], slices: readonly RunSlice[], columns: readonly ColumnSpec[]): string[] {
  if (slices.every((s) => s.evals.length === 0)) return ['No evaluation reports found: run `ibrar eval --run RUN_DIR` first.'];
  const uniq = <T>(xs: T[]) => [...new Set(xs)];
  const eps = uniq(rows.map((r) => epsWords(r.eps)));
  const ns = uniq(rows.map((r) => r.n));
  const lines = [`ε = ${eps.join(' / ')} (L∞), n = ${ns.join(' / ')} test examples${eps.length > 1 || ns.length > 1 ? ' (each row says which)' : ''}`];
  const steps: string[] = [];
  for (const c of columns) {
    if (['natural', 'worst_case', 'diagnostics'].includes(c.attack) || 'steps' in c.match) continue;
    const s = uniq(slices.flatMap((sl) => sl.evals.slice(0, 1).flatMap((e) => e.report.attacks.filter((a) => a.attack === c.attack).map((a) => a.params.steps))).filter((v) => v !== undefined).map(String));
    if (s.length) steps.push(`${columnHeader(c.key)} ${s.join('/')} steps`);
  }
  if (steps.length) lines.push(steps.join(', '));
  return lines;
}

export function buildReportTable(req: Omit<ReportRequest, 'outDir'>): ReportTable {
  const dirs = findRunDirs(req.paths, { includeProbes: req.includeProbes });
  const slices: RunSlice[] = [];
  const noEval: string[] = [];
  for (const runDir of dirs) {
    const config = readRunConfig(runDir);
    const evals = chooseEvals(runDir, req.evalChoice).reverse();
    const wantEps = req.eps === 'all' ? null : req.eps ?? config.eval.eps;
    const keys = new Map<string, RunSlice>();
    for (const e of evals) {
      if (wantEps !== null && Math.abs(e.report.eps - wantEps) > 1e-12) continue;
      const k = `${e.report.eps}|${e.report.n}`;
      if (!keys.has(k)) keys.set(k, { runDir, config, eps: e.report.eps, n: e.report.n, evals: [] });
      keys.get(k)!.evals.push(e);
    }
    if (keys.size === 0) noEval.push(runDir);
    slices.push(...keys.values());
  }
  const found: string[] = [];
  for (const s of slices) for (const e of s.evals) for (const a of e.report.attacks) if (!found.includes(a.attack)) found.push(a.attack);
  const columns = req.columns?.length ? req.columns.map(parseColumn) : layoutColumns(req.layout, found).map((c) => parseColumn(c.key));
  // Within a slice the fullest evaluation (most attacks) comes first, newest first among equals:
  // a later one-attack sweep point (`plot --compute`) does not replace the full evaluation, and a
  // column naming parameters (`pgd:steps=50`) finds the evaluation that ran them.
  for (const s of slices) {
    s.evals.sort((a, b) => b.report.attacks.length - a.report.attacks.length || (a.report.createdAt < b.report.createdAt ? 1 : a.report.createdAt > b.report.createdAt ? -1 : 0));
  }
  const verdictOf = (s: RunSlice) => {
    for (const e of s.evals) {
      if (!e.report.diagnostics) continue;
      const d = readDiagnosticsReport(path.join(path.dirname(e.file), e.report.diagnostics));
      if (d) return d.verdict;
    }
    return null;
  };
  const rows = aggregateSlices(slices, columns, verdictOf);
  const several = new Set(rows.map((r) => `${r.eps}|${r.n}`)).size > 1;
  if (several) for (const r of rows) r.label = `${r.label} (ε ${epsWords(r.eps)}, n ${r.n})`;
  const notes = [...new Set(rows.flatMap((r) => [...r.notes, ...(r.differs.length ? [differsNote(r)] : [])]))];
  if (noEval.length) notes.push(`${noEval.length} run(s) without an evaluation report${req.eps === 'all' ? '' : ' at their eval.eps'}: ${noEval.map((r) => path.basename(r)).join(', ')}`);
  return {
    format: 'ibrar-report/1',
    layout: req.layout,
    title: req.title ?? TITLES[req.layout],
    columns: columns.map((c) => ({ key: c.key, header: columnHeader(c.key) })),
    setup: setupLines(rows, slices, columns),
    rows,
    notes,
    runs: slices.map((s) => ({ group: rows.find((g) => g.runs.includes(s.runDir) && g.eps === s.eps && g.n === s.n)!.label, runDir: s.runDir, seed: s.config.seed, evalFile: s.evals[0]?.file ?? '', figures: runFigures(s.runDir) })),
    createdAt: new Date().toISOString(),
  };
}

export function writeReport(req: ReportRequest): { table: ReportTable; files: string[] } {
  const table = buildReportTable(req);
  if (table.rows.length === 0) throw new UserError('no runs to report');
  const outDir = path.resolve(req.outDir ?? path.join('reports', runTimestamp(new Date())));
  makeDirs(outDir);
  const files = ['report.md', 'report.tex', 'report.csv', 'report.json'].map((f) => path.join(outDir, f));
  writeFileAtomic(files[0], tableMarkdown(table, outDir));
  writeFileAtomic(files[1], tableLatex(table));
  writeFileAtomic(files[2], tableCsv(table));
  writeJsonAtomic(files[3], table);
  return { table, files };
}
