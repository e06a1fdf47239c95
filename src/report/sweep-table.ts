// Sweep tables for people: the cells of a plan (`ibrar sweep --dry-run`) and their state
// (`ibrar sweep status`, the end of a local sweep), as aligned Markdown.
import { canonicalJson } from '../runs/config-hash';
import type { CellRecord } from '../runs/sweep-files';

export function markdownTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** A value as it reads in a table cell: strings bare, the rest as compact JSON. */
export function valueText(v: unknown): string {
  if (v === undefined) return '–';
  if (typeof v === 'string') return v;
  return canonicalJson(v);
}

export interface PlanCell {
  index: number;
  id: string;
  name: string;
  values: Record<string, unknown>;
  origin: 'grid' | 'include';
}

export function planTable(cells: readonly PlanCell[], columns: readonly string[]): string {
  return markdownTable(
    ['#', 'id', 'name', ...columns],
    cells.map((c) => [String(c.index), c.id, c.name + (c.origin === 'include' ? ' (include)' : ''), ...columns.map((k) => valueText(c.values[k]))]),
  );
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${(100 * v).toFixed(2)}`);

export interface StatusCell {
  index: number;
  id: string;
  name: string;
  state: string;
  attempts: number;
  restarts?: number;
  record: CellRecord | null;
}

/** One row per cell: state, attempts, test accuracy, the evaluation's numbers, the verdict. */
export function statusTable(cells: readonly StatusCell[]): string {
  const attacks = [...new Set(cells.flatMap((c) => Object.keys(c.record?.results?.robust ?? {})))];
  const verdicts = cells.some((c) => c.record?.results?.verdict);
  return markdownTable(
    ['#', 'name', 'state', 'tries', 'test acc %', ...(attacks.length ? ['clean %', ...attacks.map((a) => `${a} %`)] : []), ...(verdicts ? ['diagnostics'] : [])],
    cells.map((c) => {
      const r = c.record?.results;
      return [
        String(c.index),
        c.name,
        c.state + (c.state === 'failed' && c.record?.error ? ` (${c.record.error.split('\n')[0].slice(0, 60)})` : ''),
        String(c.attempts) + (c.restarts ? ` (${c.restarts} requeue${c.restarts > 1 ? 's' : ''})` : ''),
        pct(r?.test_acc),
        ...(attacks.length ? [pct(r?.clean_acc), ...attacks.map((a) => pct(r?.robust?.[a]))] : []),
        ...(verdicts ? [r?.verdict ?? '–'] : []),
      ];
    }),
  );
}
