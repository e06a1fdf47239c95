// The paper's Fig. 3 drawn from a run's figures/tsne.json: t-SNE of the penultimate features,
// clean and under an attack, coloured by true class.
import type { TsneData, TsneEmbedding } from '../runs/tsne-file';
import { categorical } from './colors';
import { epsWords, renderFigure, type Panel } from './svg';

export function tsneFigure(data: TsneData, label: string): string {
  const k = data.classNames.length;
  const acc = (p: number[]) => (100 * p.filter((v, i) => v === data.labels[i]).length) / Math.max(p.length, 1);
  const panel = (title: string, e: TsneEmbedding, name: string): Panel => ({
    title: `${title} (accuracy ${acc(e.predictions).toFixed(1)}%)`,
    xLabel: 't-SNE 1',
    yLabel: 't-SNE 2',
    hideTicks: true,
    scatter: { name, points: e.points.map(([x, y], i) => ({ x, y, color: categorical(data.labels[i], k), label: data.labels[i] })) },
  });
  return renderFigure({
    title: `t-SNE of ${data.tap} features: ${label} (n = ${data.n})`,
    panels: [panel('clean', data.clean, 'clean'), panel(`${data.attack.toUpperCase()} ε = ${epsWords(data.eps)}`, data.adversarial, 'adversarial')],
    columns: 2,
    panelWidth: 420,
    panelHeight: 400,
    legend: data.classNames.map((c, i) => ({ name: c, color: categorical(i, k) })),
    note: 'Colour = true class. Each panel is its own embedding (t-SNE axes are not comparable across panels).',
  });
}
