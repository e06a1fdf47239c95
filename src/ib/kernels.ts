// Kernel matrices of the HSIC estimators (docs/method.md §1.1), built on the host in float64
// from a float32 Gram matrix of the column-centred features.
//
//   gaussian: K = exp(−D/v), v = 2σ²d, D_ij = |G_ii − 2G_ij + G_jj|   (D is translation
//             invariant, so the Gram of the column-centred Z gives the same D with far less
//             cancellation); we keep M = K − 1 = expm1(−D/v) because 1ᵀH = 0 makes
//             K H = M H exactly, and M carries the informative digits that exp() loses.
//   linear:   K = Z Zᵀ (no scaling); H K H = Zc Zcᵀ.
//
// Every estimator here only needs the symmetric centred form S = H K H: tr(R_A R_B) and
// tr(Kc_A Kc_B) are the same for Kc = K H and for H K H (cyclic trace, H² = H).
import { doubleCentre } from './linalg64';

export type KernelKind = 'gaussian' | 'linear';

/** σ and ε of the reference code (docs/method.md §1.1). */
export const HSIC_SIGMA = 5;
export const HSIC_EPS = 1e-5;

export interface CentredKernel {
  readonly m: number;
  readonly kind: KernelKind;
  /** Gaussian variance 2σ²d (NaN for linear). */
  readonly v: number;
  /** Gaussian K = exp(−D/v) (needed by the gradient); null for linear. */
  readonly k: Float64Array | null;
  /** S = H K H (symmetric). */
  readonly s: Float64Array;
}

/**
 * Centred kernel from the Gram matrix G = Zc Zcᵀ (m×m, row-major) of the column-centred
 * features, d = number of feature columns.
 */
export function centredKernelFromGram(
  gram: ArrayLike<number>,
  m: number,
  d: number,
  kind: KernelKind,
  sigma: number,
): CentredKernel {
  const n = m * m;
  const s = new Float64Array(n);
  const rowMean = new Float64Array(m);
  if (kind === 'linear') {
    for (let i = 0; i < n; i++) s[i] = gram[i];
    symmetrise(s, m);
    // Zc Zcᵀ is centred already up to float32 round-off; centring again in float64 is exact.
    doubleCentre(s, m, s, rowMean);
    return { m, kind, v: NaN, k: null, s };
  }
  const v = 2 * sigma * sigma * d;
  gaussianMFromGram(gram, 0, m, v, s); // s holds M = K − 1 until it is centred below
  const k = new Float64Array(n);
  for (let i = 0; i < n; i++) k[i] = s[i] + 1;
  doubleCentre(s, m, s, rowMean);
  return { m, kind, v, k, s };
}

/**
 * out = M = expm1(−D/v) (= K − 1), symmetric with a zero diagonal, from the m×m Gram block
 * starting at `offset` of `gram`. D_ij = |G_ii − 2G_ij + G_jj| with G_ij averaged over
 * both halves (a float32 Gram need not be exactly symmetric).
 */
export function gaussianMFromGram(gram: ArrayLike<number>, offset: number, m: number, v: number, out: Float64Array): Float64Array {
  for (let i = 0; i < m; i++) {
    const oi = offset + i * m;
    const gii = gram[oi + i];
    out[i * m + i] = 0;
    for (let j = i + 1; j < m; j++) {
      const gij = 0.5 * (gram[oi + j] + gram[offset + j * m + i]);
      const mij = Math.expm1(-Math.abs(gii - 2 * gij + gram[offset + j * m + j]) / v);
      out[i * m + j] = mij;
      out[j * m + i] = mij;
    }
  }
  return out;
}

/** Column-centred copy (float64) of a host matrix z [m, d]. */
export function centredColumnsHost(z: ArrayLike<number>, m: number, d: number): Float64Array {
  const zc = new Float64Array(m * d);
  for (let j = 0; j < d; j++) {
    let mean = 0;
    for (let i = 0; i < m; i++) mean += z[i * d + j];
    mean /= m;
    for (let i = 0; i < m; i++) zc[i * d + j] = z[i * d + j] - mean;
  }
  return zc;
}

/** Gram Zc Zcᵀ (float64) of the column-centred rows of a host matrix z [m, d]. */
export function hostCentredGram(z: ArrayLike<number>, m: number, d: number): Float64Array {
  const zc = centredColumnsHost(z, m, d);
  const g = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = i; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += zc[i * d + k] * zc[j * d + k];
      g[i * m + j] = s;
      g[j * m + i] = s;
    }
  }
  return g;
}

function symmetrise(a: Float64Array, m: number): void {
  for (let i = 0; i < m; i++) {
    for (let j = i + 1; j < m; j++) {
      const avg = 0.5 * (a[i * m + j] + a[j * m + i]);
      a[i * m + j] = avg;
      a[j * m + i] = avg;
    }
  }
}

/** Kc = K H (the reference's right-only centring): subtract each row's mean. */
export function centreRight(k: ArrayLike<number>, m: number): Float64Array {
  const out = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    let r = 0;
    for (let j = 0; j < m; j++) r += k[i * m + j];
    r /= m;
    for (let j = 0; j < m; j++) out[i * m + j] = k[i * m + j] - r;
  }
  return out;
}
