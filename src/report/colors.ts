// Colours for figures: a categorical palette (Tableau 10, the matplotlib default, for methods
// and classes) and viridis (perceptually uniform, for training progress).

export const CATEGORICAL = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

/** Colour i of a categorical scale; beyond 10 colours, evenly spaced hues. */
export function categorical(i: number, n = CATEGORICAL.length): string {
  if (n <= CATEGORICAL.length) return CATEGORICAL[((i % CATEGORICAL.length) + CATEGORICAL.length) % CATEGORICAL.length];
  return `hsl(${Math.round((360 * i) / n)}, 65%, 45%)`;
}

// viridis sampled at t = 0, 1/8, …, 1 (matplotlib's table), linearly interpolated in between.
const VIRIDIS: ReadonlyArray<readonly [number, number, number]> = [
  [68, 1, 84],
  [71, 44, 122],
  [59, 81, 139],
  [44, 113, 142],
  [33, 144, 141],
  [39, 173, 129],
  [92, 200, 99],
  [170, 220, 50],
  [253, 231, 37],
];

export function viridis(t: number): string {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(u), VIRIDIS.length - 2);
  const f = u - i;
  const c = VIRIDIS[i].map((v, k) => Math.round(v + f * (VIRIDIS[i + 1][k] - v)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
