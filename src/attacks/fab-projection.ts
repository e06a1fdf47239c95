// FAB's L∞ projection (Croce & Hein 2020, AutoAttack `projection_linf`), written per row on
// plain arrays: the smallest-L∞ step d with w·(t + d) = b and t + d ∈ [0,1]^n, or, when the
// box cannot reach the hyperplane, the box corner that gets closest.
//
// With the sign of (w, b) chosen so that w·t ≥ b, each coordinate moves towards the box side
// that lowers w·z (up where w < 0, down where w > 0) by at most p_i (its distance to that
// side). For an L∞ radius λ the achievable change is g(λ) = −Σ|w_i|·min(λ, p_i), piecewise
// linear and decreasing; λ solves g(λ) = b − w·t, found by bisection over the sorted p.

/** Writes into `out` (length n) the step for point t onto {z : w·z = b} ∩ [0,1]^n. */
export function projectLinfRow(t: ArrayLike<number>, w0: ArrayLike<number>, b0: number, out: Float64Array): void {
  const n = t.length;
  let wt = 0;
  for (let i = 0; i < n; i++) wt += w0[i] * t[i];
  const sgn = wt - b0 >= 0 ? 1 : -1;
  const w = new Float64Array(n);
  const a = new Uint8Array(n); // 1: move up (w < 0)
  const p = new Float64Array(n);
  const dFull = new Float64Array(n);
  let bw = 0; // (w·t after the sign flip)
  let b0Full = 0; // w·dFull: the largest decrease the box allows
  let sAbs = 0;
  for (let i = 0; i < n; i++) {
    const wi = w0[i] * sgn;
    w[i] = wi;
    a[i] = wi < 0 ? 1 : 0;
    dFull[i] = wi !== 0 ? a[i] - t[i] : 0;
    p[i] = (a[i] ? 1 - t[i] : t[i]) + 0; // + 0 turns −0 into +0 for the radix sort
    bw += wi * t[i];
    b0Full += wi * dFull[i];
    sAbs += Math.abs(wi);
  }
  const b = b0 * sgn - bw; // required change of w·z (≤ 0)
  if (sAbs === 0) {
    // No direction changes w·z (all-zero gradient). The reference divides by zero here.
    out.fill(0);
    return;
  }
  // Coordinates by decreasing p; S[k] = Σ_{j≤k}|w_j|, SB[k] = −Σ_{j>k}|w_j|·p_j, so that
  // g(λ) = SB[k] − λ·S[k] while the first k+1 coordinates are not yet at their box side.
  const order = argsortNonNegative(p);
  const S = new Float64Array(n);
  const SB = new Float64Array(n);
  let accS = 0;
  let accB = b0Full;
  for (let k = 0; k < n; k++) {
    const i = order[n - 1 - k];
    accS += Math.abs(w[i]);
    accB += -w[i] * dFull[i];
    S[k] = accS;
    SB[k] = accB;
  }
  const gAtMinP = SB[n - 1] - S[n - 1] * p[order[0]];
  const lambdaBelowAll = b - gAtMinP > 0; // λ < min p: every coordinate moves by λ
  const bracketed = b - b0Full > 0 && !lambdaBelowAll; // reachable, λ between two p's
  for (let i = 0; i < n; i++) out[i] = dFull[i];
  if (lambdaBelowAll) {
    const lam = Math.max((b - SB[n - 1]) / -S[n - 1], 0);
    for (let i = 0; i < n; i++) out[i] = w[i] !== 0 ? (2 * a[i] - 1) * lam : 0;
    return;
  }
  if (bracketed) {
    // Same bisection as the reference: ⌈log₂ n⌉ halvings of [0, n−1].
    let lb = 0;
    let ub = n - 1;
    const iters = Math.ceil(Math.log2(n));
    for (let it = 0; it < iters; it++) {
      const mid = Math.floor((lb + ub) / 2);
      const g = SB[mid] - S[mid] * p[order[n - 1 - mid]];
      if (b - g > 0) lb = mid;
      else ub = mid;
    }
    const lam = Math.max((b - SB[lb]) / -S[lb], 0);
    for (let i = 0; i < n; i++) {
      if (w[i] === 0) out[i] = 0;
      else out[i] = a[i] ? Math.min(lam, dFull[i]) : Math.max(-lam, dFull[i]);
    }
    return;
  }
  // Unreachable within the box: go all the way to the box side in every coordinate.
  for (let i = 0; i < n; i++) if (w[i] === 0) out[i] = 0;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Stable ascending argsort of non-negative doubles: an LSD radix sort on their bit patterns
 * (for x ≥ 0 the IEEE-754 bits order like the values), ~20× faster than a comparator sort
 * at image sizes.
 */
export function argsortNonNegative(keys: Float64Array): Uint32Array {
  const n = keys.length;
  let src = new Uint32Array(n);
  let dst = new Uint32Array(n);
  for (let i = 0; i < n; i++) src[i] = i;
  if (n < 2) return src;
  const bits = new Uint32Array(keys.buffer, keys.byteOffset, 2 * n);
  const [loWord, hiWord] = LITTLE_ENDIAN ? [0, 1] : [1, 0];
  const count = new Uint32Array(256);
  for (let pass = 0; pass < 8; pass++) {
    const word = pass < 4 ? loWord : hiWord;
    const shift = (pass % 4) * 8;
    count.fill(0);
    for (let i = 0; i < n; i++) count[(bits[2 * src[i] + word] >>> shift) & 255]++;
    if (count[(bits[2 * src[0] + word] >>> shift) & 255] === n) continue; // digit constant
    let pos = 0;
    for (let d = 0; d < 256; d++) {
      const c = count[d];
      count[d] = pos;
      pos += c;
    }
    for (let i = 0; i < n; i++) {
      const k = src[i];
      dst[count[(bits[2 * k + word] >>> shift) & 255]++] = k;
    }
    [src, dst] = [dst, src];
  }
  return src;
}

// FAB's L2 and L1 projections (AutoAttack `projection_l2`, `projection_l1`), per row: the
// smallest step d in that norm with w·(t + d) = b and t + d ∈ [0,1]^n, or, when the box cannot
// reach the hyperplane, the box corner that gets closest. Both first flip (w, b) so that the
// required change c = w·t − b of w·z is a decrease.

/**
 * The hyperplane {z : w·z = b} with its sign chosen so that w·t ≥ b: the turned w, and
 * c = w·t − b ≥ 0, how far w·z has to come down.
 */
function orient(t: ArrayLike<number>, w0: ArrayLike<number>, b0: number): { c: number; w: Float64Array } {
  const n = t.length;
  let wt = 0;
  for (let i = 0; i < n; i++) wt += w0[i] * t[i];
  const sgn = wt - b0 >= 0 ? 1 : -1;
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = w0[i] * sgn;
  return { c: (wt - b0) * sgn, w };
}

/**
 * L2: d = −λ·w with every coordinate stopped at its box side; coordinate i saturates at
 * λ = r_i = max(t_i/w_i, (t_i − 1)/w_i). The λ that removes c is found on the sorted r by the
 * reference's bisection; coordinates with |w_i| < 1e-8 do not move.
 */
export function projectL2Row(t: ArrayLike<number>, w0: ArrayLike<number>, b0: number, out: Float64Array): void {
  const n = t.length;
  const { c, w } = orient(t, w0, b0);
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let ri = Math.max(t[i] / w[i], (t[i] - 1) / w[i]);
    ri = Math.min(Math.max(ri, -1e12), 1e12);
    if (Math.abs(w[i]) < 1e-8 || Number.isNaN(ri)) ri = 1e12;
    if (ri === -1e12) ri = 1e12;
    r[i] = ri + 0;
  }
  const order = argsortNonNegative(r);
  // rs: sorted r; rs2: the next one (0 after the last); both with 1e12 read as 0 (as the reference).
  const rsAt = (k: number) => (k < n && r[order[k]] !== 1e12 ? r[order[k]] : 0);
  let w5 = 0;
  for (let k = 0; k < n; k++) w5 += w[order[k]] * w[order[k]];
  const ws = new Float64Array(n);
  const s = new Float64Array(n + 1);
  let acc = 0;
  let cum = 0;
  s[0] = -w5 * rsAt(0);
  for (let k = 0; k < n; k++) {
    acc += w[order[k]] * w[order[k]];
    ws[k] = w5 - acc;
    cum += (rsAt(k) - rsAt(k + 1)) * ws[k];
    s[k + 1] = cum - w5 * rsAt(0);
  }
  let dw = 0;
  for (let i = 0; i < n; i++) {
    out[i] = Math.abs(w[i]) > 1e-8 ? -(r[i] * w[i]) : 0;
    dw += out[i] * w[i];
  }
  const c4 = s[0] + c < 0; // no coordinate saturates
  const c3 = dw + c > 0; // even the full box move falls short
  if (c4) {
    const alpha = c / w5;
    for (let i = 0; i < n; i++) out[i] = -alpha * w[i];
  } else if (!c3) {
    let lb = 0;
    let ub = n - 1;
    const iters = Math.ceil(Math.log2(n));
    for (let it = 0; it < iters; it++) {
      const mid = Math.floor((lb + ub) / 2);
      if (s[mid] + c > 0) lb = mid;
      else ub = mid;
    }
    const alpha = ws[lb] === 0 ? 0 : (s[lb] + c) / ws[lb] + rsAt(lb);
    for (let i = 0; i < n; i++) out[i] = alpha > r[i] ? out[i] : -alpha * w[i];
  }
  for (let i = 0; i < n; i++) if (!(Math.abs(w[i]) > 1e-8)) out[i] = 0;
}

/**
 * L1: move whole coordinates to their box side in order of decreasing |w_i| (increasing
 * 1/|w_i|) until the next one would overshoot; that one moves only as far as needed. The
 * position is found on the cumulative changes by the reference's bisection.
 */
export function projectL1Row(t: ArrayLike<number>, w0: ArrayLike<number>, b0: number, out: Float64Array): void {
  const n = t.length;
  const { c, w } = orient(t, w0, b0);
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) r[i] = Math.min(Math.abs(1 / w[i]), 1e12);
  const order = argsortNonNegative(r);
  const pos = new Uint32Array(n);
  for (let k = 0; k < n; k++) pos[order[k]] = k;
  // s[0] = c, s[k + 1] = c + Σ_{j ≤ k} (change of w·z when the j-th coordinate moves fully).
  const s = new Float64Array(n + 1);
  s[0] = c;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    s[k + 1] = s[k] + Math.min(-w[i] * t[i], w[i] * (1 - t[i]));
  }
  for (let i = 0; i < n; i++) out[i] = w[i] !== 0 ? (w[i] < 0 ? 1 : 0) - t[i] : 0;
  if (s[n] < 0) {
    let lb = 0;
    let ub = n + 1;
    const iters = Math.ceil(Math.log2(n));
    for (let it = 0; it < iters; it++) {
      const mid = Math.floor((lb + ub) / 2);
      if (s[mid] > 0) lb = mid;
      else ub = mid;
    }
    const at = order[lb];
    const alpha = -s[lb] / w[at];
    for (let i = 0; i < n; i++) if (!(pos[i] < lb)) out[i] = 0;
    out[at] = alpha;
  }
  for (let i = 0; i < n; i++) if (!(Math.abs(w[i]) > 1e-8)) out[i] = 0;
}
