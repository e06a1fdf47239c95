// Figure kinds of `ibrar plot` (a dependency-free module, so the CLI can list them cheaply).
export const FIGURE_KINDS = ['curves', 'info-plane', 'tsne', 'steps', 'eps'] as const;
export type FigureKind = (typeof FIGURE_KINDS)[number];
