// Paper-style tables from aggregated rows: Markdown, LaTeX (booktabs), CSV and JSON.
// Layouts: `main` = Tables 1/2 (Natural, PGD, CW, FGSM, FAB, NIFGSM); `ablation` = Table 4
// (Natural, PGD, NIFGSM, FGSM; rows named by the ablation row each config implements);
// `all` = Natural, every attack found, worst case.
import * as path from 'path';
import type { GroupRow } from './aggregate';
import { csvRow } from '../runs/metrics';

export type LayoutName = 'main' | 'ablation' | 'all';

export interface Column {
  key: string;
  header: string;
}

const HEADERS: Record<string, string> = {
  natural: 'Natural',
  worst_case: 'Worst case',
  diagnostics: 'Diagnostics',
  pgd: 'PGD',
  cw: 'CW',
  fgsm: 'FGSM',
  fab: 'FAB',
  nifgsm: 'NIFGSM',
  'pgd-ad': 'PGD_AD',
  autoattack: 'AutoAttack',
};

/** `pgd` → PGD, `pgd:steps=50` → PGD-50, `pgd:restarts=5` → PGD (restarts 5). */
export function columnHeader(key: string): string {
  const [attack, ...pairs] = key.split(':');
  const base = HEADERS[attack] ?? attack.toUpperCase();
  const extra = pairs.map((p) => p.split('='));
  const steps = extra.find(([k]) => k === 'steps');
  const rest = extra.filter(([k]) => k !== 'steps').map(([k, v]) => `${k} ${v}`);
  return base + (steps ? `-${steps[1]}` : '') + (rest.length ? ` (${rest.join(', ')})` : '');
}

/** A diagnostics cell: the verdict of the row's diagnosed runs, e.g. "suspect (3/3)". */
export function verdictCell(r: GroupRow): string {
  if (r.verdicts.length === 0) return '–';
  const suspect = r.verdicts.filter((v) => v === 'suspect').length;
  return suspect > 0 ? `suspect (${suspect}/${r.verdicts.length})` : `supported (${r.verdicts.length}/${r.verdicts.length})`;
}

function cellText(r: GroupRow, key: string, pm = ' ± '): string {
  return key === 'diagnostics' ? verdictCell(r) : formatCell(r.cells[key], pm);
}

export function layoutColumns(layout: LayoutName, attacksFound: readonly string[] = []): Column[] {
  const keys =
    layout === 'main'
      ? ['natural', 'pgd', 'cw', 'fgsm', 'fab', 'nifgsm']
      : layout === 'ablation'
        ? ['natural', 'pgd', 'nifgsm', 'fgsm']
        : ['natural', ...attacksFound, 'worst_case'];
  return keys.map((key) => ({ key, header: columnHeader(key) }));
}

export interface ReportTable {
  format: 'ibrar-report/1';
  layout: LayoutName;
  title: string;
  columns: Column[];
  /** Evaluation settings shared by the table's runs, in words (ε, steps per attack). */
  setup: string[];
  rows: GroupRow[];
  /** Footnotes: VIB sampling, HBaR weights, groups whose configs differ beyond the seed. */
  notes: string[];
  runs: Array<{ group: string; runDir: string; seed: number; evalFile: string; figures: string[] }>;
  createdAt: string;
}

function pct(v: number): string {
  return (100 * v).toFixed(2);
}

/** "45.09 ± 0.31" (or just the mean for one run); "–" when missing. */
export function formatCell(cell: GroupRow['cells'][string], pm = ' ± '): string {
  if (!cell) return '–';
  return cell.n > 1 ? `${pct(cell.mean)}${pm}${pct(cell.std)}` : pct(cell.mean);
}

function rowLabel(r: GroupRow, layout: LayoutName): string {
  if (layout === 'ablation' && r.ablation) return `(${r.ablation.index}) ${r.ablation.formula} — ${r.label}`;
  return r.label;
}

/** Ablation rows in the paper's order; otherwise the order given. */
export function orderedRows(t: ReportTable): GroupRow[] {
  if (t.layout !== 'ablation') return t.rows;
  return [...t.rows].sort((a, b) => (a.ablation?.index ?? 99) - (b.ablation?.index ?? 99));
}

function noteMarks(t: ReportTable): Map<string, number> {
  const marks = new Map<string, number>();
  t.notes.forEach((n, i) => marks.set(n, i + 1));
  return marks;
}

export function tableMarkdown(t: ReportTable, outDir: string): string {
  const marks = noteMarks(t);
  const lines = [`# ${t.title}`, '', ...t.setup.map((s) => `${s}  `), '', `| Method | ${t.columns.map((c) => c.header).join(' | ')} | Runs |`];
  lines.push(`|---|${t.columns.map(() => '---:').join('|')}|---:|`);
  for (const r of orderedRows(t)) {
    const sup = [...r.notes, ...(r.differs.length ? [differsNote(r)] : [])].map((n) => marks.get(n)).filter(Boolean);
    const label = rowLabel(r, t.layout) + (sup.length ? ` [${sup.join(',')}]` : '');
    lines.push(`| ${label} | ${t.columns.map((c) => cellText(r, c.key)).join(' | ')} | ${r.runs.length} |`);
  }
  lines.push('', 'Accuracies in %; mean ± sample standard deviation (n − 1) over the runs of a row (seeds). Rows never mix evaluation budgets (ε) or sizes (n); a cell stays empty where its runs used different attack parameters.');
  if (t.notes.length) {
    lines.push('');
    t.notes.forEach((n, i) => lines.push(`[${i + 1}] ${n}  `));
  }
  lines.push('', '## Runs', '', '| Row | Seed | Run | Evaluation | Figures |', '|---|---:|---|---|---|');
  const rel = (p: string) => (p ? path.relative(outDir, p).split(path.sep).join('/') : '');
  for (const r of t.runs) {
    const figs = r.figures.map((f) => `[${path.basename(f, '.svg')}](${rel(f)})`).join(' ');
    lines.push(`| ${r.group} | ${r.seed} | \`${rel(r.runDir)}\` | ${r.evalFile ? `[${path.basename(r.evalFile)}](${rel(r.evalFile)})` : 'none'} | ${figs || '–'} |`);
  }
  return lines.join('\n') + '\n';
}

export function differsNote(r: GroupRow): string {
  return `row ${r.label}: its runs' configs differ beyond the seed (${r.differs.slice(0, 6).join(', ')}${r.differs.length > 6 ? ', …' : ''})`;
}

export function latexEscape(s: string): string {
  return s.replace(/[\\&%$#_{}~^]/g, (c) => (c === '\\' ? '\\textbackslash{}' : c === '~' ? '\\textasciitilde{}' : c === '^' ? '\\textasciicircum{}' : `\\${c}`));
}

export function tableLatex(t: ReportTable): string {
  const marks = noteMarks(t);
  const lines = [
    '% Generated by `ibrar report`; needs \\usepackage{booktabs}.',
    '\\begin{table}[t]',
    '\\centering',
    `\\caption{${latexEscape(t.title)}. ${latexEscape(t.setup.join('; '))}. Accuracy (\\%), mean $\\pm$ std over seeds.}`,
    `\\begin{tabular}{l${'c'.repeat(t.columns.length)}}`,
    '\\toprule',
    `Method & ${t.columns.map((c) => latexEscape(c.header)).join(' & ')} \\\\`,
    '\\midrule',
  ];
  for (const r of orderedRows(t)) {
    const sup = [...r.notes, ...(r.differs.length ? [differsNote(r)] : [])].map((n) => marks.get(n)).filter(Boolean);
    const base = t.layout === 'ablation' && r.ablation ? `(${r.ablation.index}) ${r.ablation.latex} ${latexEscape(r.label)}` : latexEscape(r.label);
    const label = base + (sup.length ? `$^{${sup.join(',')}}$` : '');
    lines.push(`${label} & ${t.columns.map((c) => cellText(r, c.key, ' $\\pm$ ').replace('–', '--')).join(' & ')} \\\\`);
  }
  lines.push('\\bottomrule', '\\end{tabular}');
  if (t.notes.length) {
    lines.push('\\par\\smallskip\\footnotesize');
    t.notes.forEach((n, i) => lines.push(`$^{${i + 1}}$ ${latexEscape(n)}\\\\`));
  }
  lines.push('\\end{table}');
  return lines.join('\n') + '\n';
}

/** One row per group: mean and std of every column as fractions (not %), full precision. */
export function tableCsv(t: ReportTable): string {
  const header = ['row', 'label', 'runs', 'seeds', ...t.columns.flatMap((c) => [`${c.key}_mean`, `${c.key}_std`, `${c.key}_n`])];
  let out = csvRow(header);
  for (const r of orderedRows(t)) {
    out += csvRow([
      r.key,
      rowLabel(r, t.layout),
      r.runs.length,
      r.seeds.join(' '),
      ...t.columns.flatMap((c) => {
        if (c.key === 'diagnostics') return [verdictCell(r), '', r.verdicts.length];
        const cell = r.cells[c.key];
        return cell ? [cell.mean, cell.std, cell.n] : ['', '', 0];
      }),
    ]);
  }
  return out;
}
