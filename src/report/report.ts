// `ibrar report`: runs → aggregated paper-style tables in four formats.
import * as fs from 'fs';
import * as path from 'path';
import { writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { runTimestamp } from '../runs/run-dir';
import { UserError } from '../errors';
import { epsWords } from './svg';
import { aggregateRuns, type RunEntry } from './aggregate';
import { chooseEval, findRunDirs, readRunConfig, runFigures } from './runs';
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
}

const TITLES: Record<LayoutName, string> = {
  main: 'Robust accuracy under attacks (layout of the paper’s Tables 1–2)',
  ablation: 'Ablation (layout of the paper’s Table 4)',
  all: 'Robust accuracy under every evaluated attack',
};

function setupLines(runs: readonly RunEntry[], columns: readonly string[]): string[] {
  const evals = runs.map((r) => r.eval?.report).filter((e): e is NonNullable<typeof e> => Boolean(e));
  if (evals.length === 0) return ['No evaluation reports found: run `ibrar eval --run RUN_DIR` first.'];
  const uniq = <T>(xs: T[]) => [...new Set(xs)];
  const eps = uniq(evals.map((e) => epsWords(e.eps)));
  const ns = uniq(evals.map((e) => e.n));
  const lines = [`ε = ${eps.join(' / ')} (L∞), ${ns.length === 1 ? `n = ${ns[0]}` : `n = ${Math.min(...ns)}–${Math.max(...ns)}`} test examples`];
  const steps: string[] = [];
  for (const c of columns) {
    const s = uniq(evals.flatMap((e) => e.attacks.filter((a) => a.attack === c).map((a) => a.params.steps)).filter((v) => v !== undefined).map(String));
    if (s.length) steps.push(`${columnHeader(c)} ${s.join('/')} steps`);
  }
  if (steps.length) lines.push(steps.join(', '));
  return lines;
}

export function buildReportTable(req: Omit<ReportRequest, 'outDir'>): ReportTable {
  const dirs = findRunDirs(req.paths);
  const provisional = req.layout === 'all' ? [] : layoutColumns(req.layout).map((c) => c.key);
  const runs: RunEntry[] = dirs.map((runDir) => {
    const config = readRunConfig(runDir);
    return { runDir, config, eval: chooseEval(runDir, provisional, req.evalChoice, config.eval.eps) };
  });
  const found: string[] = [];
  for (const r of runs) for (const a of r.eval?.report.attacks ?? []) if (!found.includes(a.attack)) found.push(a.attack);
  const columns = layoutColumns(req.layout, found);
  const rows = aggregateRuns(runs, columns.map((c) => c.key));
  const notes = [...new Set(rows.flatMap((r) => [...r.notes, ...(r.differs.length ? [differsNote(r)] : [])]))];
  const noEval = runs.filter((r) => !r.eval);
  if (noEval.length) notes.push(`${noEval.length} run(s) without an evaluation report (cells from the other runs): ${noEval.map((r) => path.basename(r.runDir)).join(', ')}`);
  return {
    format: 'ibrar-report/1',
    layout: req.layout,
    title: req.title ?? TITLES[req.layout],
    columns,
    setup: setupLines(runs, columns.map((c) => c.key)),
    rows,
    notes,
    runs: runs.map((r) => ({ group: rows.find((g) => g.runs.includes(r.runDir))!.key, runDir: r.runDir, seed: r.config.seed, evalFile: r.eval?.file ?? '', figures: runFigures(r.runDir) })),
    createdAt: new Date().toISOString(),
  };
}

export function writeReport(req: ReportRequest): { table: ReportTable; files: string[] } {
  const table = buildReportTable(req);
  if (table.rows.length === 0) throw new UserError('no runs to report');
  const outDir = path.resolve(req.outDir ?? path.join('reports', runTimestamp(new Date())));
  fs.mkdirSync(outDir, { recursive: true });
  const files = ['report.md', 'report.tex', 'report.csv', 'report.json'].map((f) => path.join(outDir, f));
  writeFileAtomic(files[0], tableMarkdown(table, outDir));
  writeFileAtomic(files[1], tableLatex(table));
  writeFileAtomic(files[2], tableCsv(table));
  writeJsonAtomic(files[3], table);
  return { table, files };
}
