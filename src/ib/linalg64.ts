// Small dense float64 linear algebra on the host for the m×m matrices of the HSIC
// estimators (m = batch size, ≤ a few hundred). Row-major Float64Array, no allocation in
// the loops; callers pass output/work buffers so that per-channel loops can reuse them.
// Why the host: float32 loses the informative part of kernels that sit within ~1e-3 of 1
// (docs/method.md §1.1, "Float32 warning"), and tfjs has no float64 tensors.
import { nativeMatMul64 } from '../engine/native/linalg';

/**
 * out = a·b for m×m matrices (out must not alias a or b). The native addon, when loaded, runs
 * the same loop (same operation order per element: bit-identical) on all cores.
 */
export function matMul64(a: Float64Array, b: Float64Array, m: number, out: Float64Array): Float64Array {
  return nativeMatMul64(a, b, m, out) ? out : matMul64Js(a, b, m, out);
}

/** matMul64 in JS (the fallback, and the reference the native loop is tested against). */
export function matMul64Js(a: Float64Array, b: Float64Array, m: number, out: Float64Array): Float64Array {
  out.fill(0, 0, m * m);
  for (let i = 0; i < m; i++) {
    const oi = i * m;
    for (let k = 0; k < m; k++) {
      const aik = a[oi + k];
      if (aik === 0) continue;
      const bk = k * m;
      for (let j = 0; j < m; j++) out[oi + j] += aik * b[bk + j];
    }
  }
  return out;
}

/** Σ_i a_i·b_i over the first n entries (for symmetric a, b: tr(a·b)). */
export function dot64(a: Float64Array, b: Float64Array, n: number): number {
  return dotRange(a, 0, b, 0, n);
}

/**
 * Σ_{k<len} a[oa+k]·b[ob+k]. Four accumulators break the add dependency chain (≈1.5–2×
 * faster in V8 than one); the m³ loops below all go through here.
 */
export function dotRange(a: Float64Array, oa: number, b: Float64Array, ob: number, len: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < len; k += 4) {
    s0 += a[oa + k] * b[ob + k];
    s1 += a[oa + k + 1] * b[ob + k + 1];
    s2 += a[oa + k + 2] * b[ob + k + 2];
    s3 += a[oa + k + 3] * b[ob + k + 3];
  }
  for (; k < len; k++) s0 += a[oa + k] * b[ob + k];
  return s0 + s1 + (s2 + s3);
}

/**
 * out = H·s·H with H = I − 11ᵀ/m, for a symmetric m×m s (row and column means removed).
 * out may alias s.
 */
export function doubleCentre(s: Float64Array, m: number, out: Float64Array, rowMean: Float64Array): Float64Array {
  let grand = 0;
  for (let i = 0; i < m; i++) {
    let r = 0;
    const oi = i * m;
    for (let j = 0; j < m; j++) r += s[oi + j];
    rowMean[i] = r / m;
    grand += r;
  }
  grand /= m * m;
  for (let i = 0; i < m; i++) {
    const oi = i * m;
    const ri = rowMean[i] - grand;
    for (let j = 0; j < m; j++) out[oi + j] = s[oi + j] - ri - rowMean[j];
  }
  return out;
}

/**
 * In-place lower Cholesky factor of a symmetric positive-definite matrix (only the lower
 * triangle of `a` is read; the strict upper triangle is left untouched). Returns the first
 * pivot that is not strictly positive (NaN included) as its index, or −1 on success.
 */
export function choleskyInPlace(a: Float64Array, m: number): number {
  for (let j = 0; j < m; j++) {
    const oj = j * m;
    const d = a[oj + j] - dotRange(a, oj, a, oj, j);
    if (!(d > 0)) return j;
    const ljj = Math.sqrt(d);
    a[oj + j] = ljj;
    const inv = 1 / ljj;
    for (let i = j + 1; i < m; i++) {
      const oi = i * m;
      a[oi + j] = (a[oi + j] - dotRange(a, oi, a, oj, j)) * inv;
    }
  }
  return -1;
}

/**
 * Inverse of a symmetric positive-definite matrix via Cholesky (≈ m³/2 multiply-adds):
 * A = L Lᵀ, U = L⁻ᵀ stored row-wise (U[j][i] = (L⁻¹)[i][j]), A⁻¹ = L⁻ᵀ L⁻¹.
 * `a` is destroyed (it holds L afterwards); `work` needs m² entries. If A is not
 * numerically positive definite, falls back to Gauss–Jordan with partial pivoting; a NaN
 * anywhere gives an all-NaN result (so a training step sees NaN, not an exception).
 */
export function spdInverse(a: Float64Array, m: number, out: Float64Array, work: Float64Array): Float64Array {
  const copy = work;
  copy.set(a.subarray(0, m * m));
  const bad = choleskyInPlace(a, m);
  if (bad >= 0) {
    if (Number.isNaN(a[bad * m + bad]) || hasNaN(copy, m * m)) return out.fill(NaN, 0, m * m);
    return gaussJordanInverse(copy, m, out);
  }
  // U = L⁻ᵀ: row j of U is column j of L⁻¹, non-zero from index j on.
  const u = work;
  u.fill(0, 0, m * m);
  for (let j = 0; j < m; j++) {
    const oj = j * m;
    for (let i = j; i < m; i++) {
      const oi = i * m;
      u[oj + i] = ((i === j ? 1 : 0) - dotRange(a, oi + j, u, oj + j, i - j)) / a[oi + i];
    }
  }
  // (A⁻¹)[p][q] = Σ_{i ≥ max(p,q)} U[p][i]·U[q][i]; symmetric, fill both halves.
  for (let p = 0; p < m; p++) {
    const op = p * m;
    for (let q = p; q < m; q++) {
      const s = dotRange(u, op + q, u, q * m + q, m - q);
      out[op + q] = s;
      out[q * m + p] = s;
    }
  }
  return out;
}

function hasNaN(a: Float64Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (Number.isNaN(a[i])) return true;
  return false;
}

/**
 * General inverse by Gauss–Jordan elimination with partial pivoting (m³). `a` is destroyed.
 * Only the fallback of spdInverse: the HSIC matrices are SPD up to round-off.
 */
export function gaussJordanInverse(a: Float64Array, m: number, out: Float64Array): Float64Array {
  out.fill(0, 0, m * m);
  for (let i = 0; i < m; i++) out[i * m + i] = 1;
  for (let c = 0; c < m; c++) {
    let piv = c;
    let best = Math.abs(a[c * m + c]);
    for (let r = c + 1; r < m; r++) {
      const v = Math.abs(a[r * m + c]);
      if (v > best) {
        best = v;
        piv = r;
      }
    }
    if (best === 0) return out.fill(NaN, 0, m * m); // singular: no meaningful HSIC
    if (piv !== c) {
      swapRows(a, m, piv, c);
      swapRows(out, m, piv, c);
    }
    const oc = c * m;
    const inv = 1 / a[oc + c];
    for (let j = 0; j < m; j++) {
      a[oc + j] *= inv;
      out[oc + j] *= inv;
    }
    for (let r = 0; r < m; r++) {
      if (r === c) continue;
      const or = r * m;
      const f = a[or + c];
      if (f === 0) continue;
      for (let j = 0; j < m; j++) {
        a[or + j] -= f * a[oc + j];
        out[or + j] -= f * out[oc + j];
      }
    }
  }
  return out;
}

function swapRows(a: Float64Array, m: number, r1: number, r2: number): void {
  const o1 = r1 * m;
  const o2 = r2 * m;
  for (let j = 0; j < m; j++) {
    const t = a[o1 + j];
    a[o1 + j] = a[o2 + j];
    a[o2 + j] = t;
  }
}
