// An independent, deliberately naive float64 implementation of the HSIC estimators, written
// straight from method.md §1.1 (exp, right-centring K H, a general inverse, the trace of a
// product) — no expm1, no symmetric centring, no Cholesky — to check src/ib against on
// tiny cases and to take finite differences of.
export type Mat = number[][];

export function rows(data: ArrayLike<number>, m: number): Mat {
  const d = data.length / m;
  return Array.from({ length: m }, (_, i) => Array.from({ length: d }, (_, j) => data[i * d + j]));
}

function matmul(a: Mat, b: Mat): Mat {
  return a.map((ai) => b[0].map((_, j) => ai.reduce((s, aik, k) => s + aik * b[k][j], 0)));
}

export function gaussianK(z: Mat, sigma: number): Mat {
  const d = z[0].length;
  return z.map((zi) =>
    z.map((zj) => {
      let dist = 0;
      for (let k = 0; k < d; k++) dist += (zi[k] - zj[k]) ** 2;
      return Math.exp(-dist / (2 * sigma * sigma * d));
    }),
  );
}

export function linearK(z: Mat): Mat {
  return z.map((zi) => z.map((zj) => zi.reduce((s, v, k) => s + v * zj[k], 0)));
}

export function centreRight(k: Mat): Mat {
  const m = k.length;
  const h = k.map((_, i) => k.map((__, j) => (i === j ? 1 : 0) - 1 / m));
  return matmul(k, h);
}

export function inverse(a: Mat): Mat {
  const m = a.length;
  const w = a.map((r, i) => [...r, ...r.map((_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < m; c++) {
    let p = c;
    for (let r = c + 1; r < m; r++) if (Math.abs(w[r][c]) > Math.abs(w[p][c])) p = r;
    [w[c], w[p]] = [w[p], w[c]];
    const piv = w[c][c];
    w[c] = w[c].map((v) => v / piv);
    for (let r = 0; r < m; r++) {
      if (r === c) continue;
      const f = w[r][c];
      w[r] = w[r].map((v, j) => v - f * w[c][j]);
    }
  }
  return w.map((r) => r.slice(m));
}

function kernelC(z: Mat, kind: 'gaussian' | 'linear', sigma: number): Mat {
  return centreRight(kind === 'gaussian' ? gaussianK(z, sigma) : linearK(z));
}

/** Σ_ij A_ij B_ji */
function traceProduct(a: Mat, b: Mat): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) for (let j = 0; j < a.length; j++) s += a[i][j] * b[j][i];
  return s;
}

export function hsicCcaRef(a: Mat, b: Mat, kindB: 'gaussian' | 'linear' = 'gaussian', sigma = 5, eps = 1e-5): number {
  const m = a.length;
  const r = (kc: Mat): Mat => matmul(kc, inverse(kc.map((row, i) => row.map((v, j) => v + (i === j ? eps * m : 0)))));
  return traceProduct(r(kernelC(a, 'gaussian', sigma)), r(kernelC(b, kindB, sigma)));
}

export function hsicPlainRef(a: Mat, b: Mat, kindB: 'gaussian' | 'linear' = 'gaussian', sigma = 5): number {
  const m = a.length;
  return traceProduct(kernelC(a, 'gaussian', sigma), kernelC(b, kindB, sigma)) / (m * m);
}

export function hsicNormalizedRef(a: Mat, b: Mat, kindB: 'gaussian' | 'linear' = 'gaussian', sigma = 5): number {
  const m = a.length;
  const ka = kernelC(a, 'gaussian', sigma);
  const kb = kernelC(b, kindB, sigma);
  const p = (x: Mat, y: Mat): number => traceProduct(x, y) / (m * m);
  return p(ka, kb) / Math.sqrt(p(ka, ka) * p(kb, kb));
}

/** Central differences of f at x (flat), step h, for every entry. */
export function centralDiff(f: (x: number[]) => number, x: number[], h: number): number[] {
  return x.map((_, i) => {
    const xp = x.slice();
    const xm = x.slice();
    xp[i] += h;
    xm[i] -= h;
    return (f(xp) - f(xm)) / (2 * h);
  });
}
