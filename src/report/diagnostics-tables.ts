// Rendering the gradient-masking diagnostics: a Markdown section with the verdict line, one
// row per check (status, what it found) and what each cost.
import type { DiagnosticsReport } from '../runs/diagnostics-file';

export function diagnosticsMarkdown(r: DiagnosticsReport, level = 1): string {
  const h = '#'.repeat(level);
  const mark = { pass: 'pass', warn: '**warn**', skip: 'skip' } as const;
  const lines = [
    `${h} Gradient-masking diagnostics`,
    '',
    `**${r.line}**`,
    '',
    `n = ${r.n} test examples, ε = ${r.eps_str}, checkpoint ${r.checkpoint.tag} (epoch ${r.checkpoint.epoch}), method ${r.method}${r.ib ? ' + IB' : ''}` +
      `; clean ${(100 * r.clean_acc).toFixed(2)} %, worst case over every attack below ${(100 * r.worst_case_acc).toFixed(2)} %` +
      (r.surrogate ? `; transfer surrogate ${r.surrogate}` : ''),
    '',
    '| check | status | found | seconds |',
    '| --- | --- | --- | ---: |',
    ...r.checks.map((c) => `| ${c.title} | ${mark[c.status]} | ${c.summary.replace(/\|/g, '\\|')} | ${c.seconds.toFixed(1)} |`),
    '',
    `Total ${r.seconds.toFixed(1)} s. Thresholds: Carlini et al. 2019 ("On Evaluating Adversarial Robustness"), AutoAttack's checks (Square may beat white-box by at most 0.2 points), Pintor et al. 2022 ("Indicators of Attack Failure").`,
    '',
  ];
  return lines.join('\n');
}
