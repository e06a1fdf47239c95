// The paper's Table 5: for each true class, the most frequent wrong predictions under an attack.
import type { ConfusionTendency } from '../runs/eval-report';

export function confusionTendency(attack: string, labels: ArrayLike<number>, preds: ArrayLike<number>, classNames: string[], top = 4): ConfusionTendency {
  const k = classNames.length;
  const matrix = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < preds.length; i++) matrix[labels[i]][preds[i]]++;
  const rows = matrix.map((row, t) => ({
    trueClass: classNames[t],
    top: row
      .map((count, p) => ({ p, count }))
      .filter((e) => e.p !== t && e.count > 0)
      .sort((a, b) => b.count - a.count || a.p - b.p)
      .slice(0, top)
      .map((e) => ({ predicted: classNames[e.p], count: e.count })),
  }));
  return { attack, classNames, rows, matrix };
}

export function confusionMarkdown(c: ConfusionTendency): string {
  const lines = [
    `## Adversarial predictions under ${c.attack} (top wrong classes per true class)`,
    '',
    'Each cell: the predicted class (number of test examples of the true class predicted as it).',
    '',
    '| true class | 1st | 2nd | 3rd | 4th |',
    '| --- | --- | --- | --- | --- |',
  ];
  for (const r of c.rows) {
    const cells = [0, 1, 2, 3].map((i) => (r.top[i] ? `${r.top[i].predicted} (${r.top[i].count})` : ''));
    lines.push(`| ${r.trueClass} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
