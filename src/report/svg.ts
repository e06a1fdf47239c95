// A small hand-written SVG plotting module: multi-panel line/scatter figures with axes, ticks,
// legends and an optional colour bar, written as a string (no browser, no native deps).
// Every data marker carries its data values (`data-series`, `data-x`, `data-y`, and
// `data-label` when given) so a figure can be checked against the files it was drawn from.

export type Point = readonly [number, number];

export interface LineSeries {
  name: string;
  points: readonly Point[];
  color: string;
  /** SVG stroke-dasharray, e.g. '6 3'; solid when absent. */
  dash?: string;
  /** Draw a marker at every point (default true). */
  markers?: boolean;
}

export interface ScatterPoint {
  x: number;
  y: number;
  color: string;
  /** Written as data-label (e.g. the class index). */
  label?: string | number;
}

export interface Panel {
  title?: string;
  xLabel: string;
  yLabel: string;
  lines?: LineSeries[];
  /** Points drawn as small dots; `path` (in order) is drawn as a thin grey line under them. */
  scatter?: { name: string; points: readonly ScatterPoint[]; path?: boolean };
  xDomain?: [number, number];
  yDomain?: [number, number];
  /** Hide the numeric tick labels (t-SNE coordinates mean nothing). */
  hideTicks?: boolean;
  /** The x axis counts whole things (epochs, steps): ticks only at integers. */
  integerX?: boolean;
}

export interface LegendEntry {
  name: string;
  color: string;
  dash?: string;
}

export interface FigureSpec {
  title?: string;
  panels: Panel[];
  columns?: number;
  panelWidth?: number;
  panelHeight?: number;
  legend?: LegendEntry[];
  /** A vertical colour bar (for colour-coded progress). */
  colorBar?: { label: string; from: string; to: string; colormap: (t: number) => string };
  /** Small print under the figure. */
  note?: string;
}

/** ε as people write it: `8/255` when it is a whole number of 255ths, else the number. */
export function epsWords(eps: number): string {
  const k = eps * 255;
  return Math.abs(k - Math.round(k)) < 1e-9 && Math.round(k) > 0 ? `${Math.round(k)}/255` : String(eps);
}

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Pixel coordinates with two decimals: plenty for a figure, keeps files small. */
function px(v: number): string {
  return (Math.round(v * 100) / 100).toString();
}

/** "Nice" tick positions covering [lo, hi] (1, 2, 5 × 10^k steps). */
export function niceTicks(lo: number, hi: number, target = 5, integer = false): number[] {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) return [];
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(target, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const nice = [1, 2, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const step = integer ? Math.max(1, Math.round(nice)) : nice;
  const first = Math.ceil(lo / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v <= hi + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return ticks;
}

/** Tick label with just enough decimals for the step. */
export function formatTick(v: number, step: number): string {
  const decimals = step > 0 ? Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9))) : 2;
  if (Math.abs(v) >= 1e5 || (Math.abs(v) < 1e-4 && v !== 0)) return v.toExponential(1);
  return v.toFixed(decimals);
}

/** Data range padded by 5 % (or ±1 around a single value). */
export function paddedDomain(values: readonly number[]): [number, number] {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [0, 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (lo === hi) return [lo - 1, hi + 1];
  const pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  return [lo, hi];
}

function panelValues(p: Panel, axis: 0 | 1): number[] {
  const out: number[] = [];
  for (const s of p.lines ?? []) for (const pt of s.points) out.push(pt[axis]);
  for (const pt of p.scatter?.points ?? []) out.push(axis === 0 ? pt.x : pt.y);
  return out;
}

function renderPanel(p: Panel, x0: number, y0: number, w: number, h: number): string {
  const m = { left: 56, right: 14, top: p.title ? 26 : 12, bottom: 44 };
  const pw = w - m.left - m.right;
  const ph = h - m.top - m.bottom;
  const [xlo, xhi] = p.xDomain ?? paddedDomain(panelValues(p, 0));
  const [ylo, yhi] = p.yDomain ?? paddedDomain(panelValues(p, 1));
  const sx = (v: number) => x0 + m.left + ((v - xlo) / (xhi - xlo || 1)) * pw;
  const sy = (v: number) => y0 + m.top + ph - ((v - ylo) / (yhi - ylo || 1)) * ph;
  const out: string[] = [];
  out.push(`<g class="panel"${p.title ? ` data-title="${escapeXml(p.title)}"` : ''}>`);
  if (p.title) out.push(`<text x="${px(x0 + m.left + pw / 2)}" y="${px(y0 + 16)}" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(p.title)}</text>`);
  out.push(`<rect x="${px(x0 + m.left)}" y="${px(y0 + m.top)}" width="${px(pw)}" height="${px(ph)}" fill="#fff" stroke="#444" stroke-width="1"/>`);
  const xt = niceTicks(xlo, xhi, 5, p.integerX);
  const yt = niceTicks(ylo, yhi);
  const xstep = xt.length > 1 ? xt[1] - xt[0] : 1;
  const ystep = yt.length > 1 ? yt[1] - yt[0] : 1;
  for (const t of xt) {
    const X = sx(t);
    out.push(`<line x1="${px(X)}" y1="${px(y0 + m.top)}" x2="${px(X)}" y2="${px(y0 + m.top + ph)}" stroke="#e6e6e6" stroke-width="1"/>`);
    if (!p.hideTicks) out.push(`<text x="${px(X)}" y="${px(y0 + m.top + ph + 14)}" text-anchor="middle" font-size="10">${formatTick(t, xstep)}</text>`);
  }
  for (const t of yt) {
    const Y = sy(t);
    out.push(`<line x1="${px(x0 + m.left)}" y1="${px(Y)}" x2="${px(x0 + m.left + pw)}" y2="${px(Y)}" stroke="#e6e6e6" stroke-width="1"/>`);
    if (!p.hideTicks) out.push(`<text x="${px(x0 + m.left - 5)}" y="${px(Y + 3.5)}" text-anchor="end" font-size="10">${formatTick(t, ystep)}</text>`);
  }
  out.push(`<text x="${px(x0 + m.left + pw / 2)}" y="${px(y0 + h - 8)}" text-anchor="middle" font-size="11">${escapeXml(p.xLabel)}</text>`);
  const ly = y0 + m.top + ph / 2;
  out.push(`<text x="${px(x0 + 13)}" y="${px(ly)}" text-anchor="middle" font-size="11" transform="rotate(-90 ${px(x0 + 13)} ${px(ly)})">${escapeXml(p.yLabel)}</text>`);
  const clip = `clip${Math.round(x0)}_${Math.round(y0)}`;
  out.push(`<clipPath id="${clip}"><rect x="${px(x0 + m.left)}" y="${px(y0 + m.top)}" width="${px(pw)}" height="${px(ph)}"/></clipPath>`);
  out.push(`<g clip-path="url(#${clip})">`);
  if (p.scatter) {
    const pts = p.scatter.points;
    if (p.scatter.path && pts.length > 1) {
      out.push(`<polyline fill="none" stroke="#bbb" stroke-width="1" points="${pts.map((q) => `${px(sx(q.x))},${px(sy(q.y))}`).join(' ')}"/>`);
    }
    for (const q of pts) {
      const label = q.label !== undefined ? ` data-label="${escapeXml(String(q.label))}"` : '';
      out.push(`<circle class="pt" cx="${px(sx(q.x))}" cy="${px(sy(q.y))}" r="2.6" fill="${q.color}" fill-opacity="0.85" data-series="${escapeXml(p.scatter.name)}" data-x="${q.x}" data-y="${q.y}"${label}/>`);
    }
  }
  for (const s of p.lines ?? []) {
    const pts = s.points.filter((q) => Number.isFinite(q[0]) && Number.isFinite(q[1]));
    if (pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${s.color}" stroke-width="1.8"${s.dash ? ` stroke-dasharray="${s.dash}"` : ''} points="${pts.map((q) => `${px(sx(q[0]))},${px(sy(q[1]))}`).join(' ')}"/>`,
      );
    }
    if (s.markers !== false || pts.length === 1) {
      for (const q of pts) {
        out.push(`<circle class="pt" cx="${px(sx(q[0]))}" cy="${px(sy(q[1]))}" r="2.8" fill="${s.color}" data-series="${escapeXml(s.name)}" data-x="${q[0]}" data-y="${q[1]}"/>`);
      }
    }
  }
  out.push('</g></g>');
  return out.join('\n');
}

function renderLegend(entries: readonly LegendEntry[], x: number, y: number, width: number): { svg: string; height: number } {
  const out: string[] = [];
  let cx = x;
  let cy = y;
  for (const e of entries) {
    const w = 34 + 6.5 * e.name.length;
    if (cx + w > x + width && cx > x) {
      cx = x;
      cy += 18;
    }
    out.push(`<line x1="${px(cx)}" y1="${px(cy)}" x2="${px(cx + 22)}" y2="${px(cy)}" stroke="${e.color}" stroke-width="2.5"${e.dash ? ` stroke-dasharray="${e.dash}"` : ''}/>`);
    out.push(`<text x="${px(cx + 27)}" y="${px(cy + 4)}" font-size="11">${escapeXml(e.name)}</text>`);
    cx += w;
  }
  return { svg: `<g class="legend">${out.join('')}</g>`, height: cy - y + 18 };
}

/** The whole figure as an SVG document. */
export function renderFigure(spec: FigureSpec): string {
  const cols = Math.max(1, Math.min(spec.columns ?? spec.panels.length, spec.panels.length || 1));
  const rows = Math.max(1, Math.ceil(spec.panels.length / cols));
  const pw = spec.panelWidth ?? 360;
  const ph = spec.panelHeight ?? 280;
  const barW = spec.colorBar ? 70 : 0;
  const width = cols * pw + barW;
  const top = spec.title ? 30 : 6;
  const body: string[] = [];
  if (spec.title) body.push(`<text x="${px(width / 2)}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`);
  spec.panels.forEach((p, i) => body.push(renderPanel(p, (i % cols) * pw, top + Math.floor(i / cols) * ph, pw, ph)));
  let height = top + rows * ph;
  if (spec.colorBar) {
    const cb = spec.colorBar;
    const x = cols * pw + 14;
    const y0 = top + 30;
    const h = Math.max(60, rows * ph - 80);
    const n = 32;
    for (let i = 0; i < n; i++) {
      body.push(`<rect x="${x}" y="${px(y0 + (h * (n - 1 - i)) / n)}" width="14" height="${px(h / n + 0.5)}" fill="${cb.colormap(i / (n - 1))}"/>`);
    }
    body.push(`<text x="${x + 18}" y="${px(y0 + 4)}" font-size="10">${escapeXml(cb.to)}</text>`);
    body.push(`<text x="${x + 18}" y="${px(y0 + h)}" font-size="10">${escapeXml(cb.from)}</text>`);
    body.push(`<text x="${x + 7}" y="${px(y0 - 10)}" text-anchor="middle" font-size="10">${escapeXml(cb.label)}</text>`);
  }
  if (spec.legend && spec.legend.length) {
    const lg = renderLegend(spec.legend, 12, height + 12, width - 24);
    body.push(lg.svg);
    height += lg.height + 10;
  }
  if (spec.note) {
    body.push(`<text x="12" y="${px(height + 14)}" font-size="10" fill="#555">${escapeXml(spec.note)}</text>`);
    height += 22;
  }
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px(width)}" height="${px(height)}" viewBox="0 0 ${px(width)} ${px(height)}" font-family="Helvetica, Arial, sans-serif">\n` +
    `<rect width="100%" height="100%" fill="#fff"/>\n` +
    body.join('\n') +
    '\n</svg>\n'
  );
}

/** Markers of an SVG written by renderFigure: series, x, y and label of every data point. */
export function parseMarkers(svg: string): Array<{ series: string; x: number; y: number; label?: string }> {
  const out: Array<{ series: string; x: number; y: number; label?: string }> = [];
  const re = /<circle class="pt"[^>]*?data-series="([^"]*)" data-x="([^"]*)" data-y="([^"]*)"(?: data-label="([^"]*)")?/g;
  const unescape = (s: string) => s.replace(/&quot;/g, '"').replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&');
  for (let m = re.exec(svg); m; m = re.exec(svg)) {
    out.push({ series: unescape(m[1]), x: Number(m[2]), y: Number(m[3]), ...(m[4] !== undefined ? { label: unescape(m[4]) } : {}) });
  }
  return out;
}
