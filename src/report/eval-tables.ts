// Rendering one evaluation report: the CSV and Markdown files written beside its JSON.
import type { EvalReport } from '../runs/eval-report';
import { csvRow } from '../runs/metrics';
import { confusionMarkdown } from './confusion';

/** ε as papers write it: k/255 when it is one, else the simplest fraction up to /1000. */
export function formatEps(eps: number): string {
  const isInt = (v: number) => Math.abs(v - Math.round(v)) < 1e-9;
  if (eps > 0 && isInt(eps * 255)) return `${Math.round(eps * 255)}/255`;
  for (let d = 1; d <= 1000; d++) {
    if (isInt(eps * d)) return d === 1 ? String(Math.round(eps)) : `${Math.round(eps * d)}/${d}`;
  }
  return String(eps);
}

export function evalCsv(r: EvalReport): string {
  const head = ['attack', 'robust_acc', 'success_rate', 'mean_distance', 'seconds', 'images_per_sec', 'n', 'eps', 'params'];
  const rows = [
    csvRow(head),
    csvRow(['clean', r.clean_acc, '', '', '', '', r.n, r.eps_str, '']),
    ...r.attacks.map((s) => csvRow([s.attack, s.robust_acc, s.success_rate, s.mean_distance ?? '', s.seconds.toFixed(3), s.images_per_sec.toFixed(2), r.n, r.eps_str, JSON.stringify(s.params)])),
    csvRow(['worst_case', r.worst_case_acc, '', '', '', '', r.n, r.eps_str, '']),
  ];
  return rows.join('');
}

export function evalMarkdown(r: EvalReport): string {
  const pct = (v: number) => (100 * v).toFixed(2);
  const lines = [
    `# Evaluation of ${r.architecture} on ${r.dataset} (${r.checkpoint.tag}, epoch ${r.checkpoint.epoch})`,
    '',
    `n = ${r.n}, ε = ${r.eps_str} (${r.eps}), seed ${r.seed}, channel mask ${r.mask_applied ? 'applied' : 'not applied'}`,
    '',
    `| ${['Natural', ...r.attacks.map((a) => a.attack.toUpperCase()), 'Worst case'].join(' | ')} |`,
    `|${' --- |'.repeat(r.attacks.length + 2)}`,
    `| ${[pct(r.clean_acc), ...r.attacks.map((a) => pct(a.robust_acc)), pct(r.worst_case_acc)].join(' | ')} |`,
    '',
  ];
  const withDistance = r.attacks.filter((a) => a.mean_distance !== undefined);
  if (withDistance.length) {
    lines.push('Perturbation norms of the successful examples (initially correct, then fooled):', '');
    for (const a of withDistance) lines.push(`- ${a.attack}: mean ${a.distance_norm?.toUpperCase()} ${a.mean_distance!.toFixed(4)}, median ${a.median_distance!.toFixed(4)}`);
    lines.push('');
  }
  for (const a of r.attacks) {
    const parts = Object.entries(a.params).map(([k, v]) => `${k} ${typeof v === 'number' ? +v.toPrecision(6) : JSON.stringify(v)}`);
    lines.push(`- ${a.attack}: ${parts.join(', ')}; ${a.seconds.toFixed(1)} s`);
  }
  lines.push('');
  if (r.diagnostics) lines.push(`Gradient-masking diagnostics: [${r.diagnostics}](${r.diagnostics})`, '');
  for (const c of r.confusion) lines.push(confusionMarkdown(c), '');
  return lines.join('\n');
}
