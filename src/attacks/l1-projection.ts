// Projection onto the intersection of an L1 ball and the [0,1] box (Croce & Hein 2021, "Mind
// the box", Alg. 2; AutoAttack's autopgd_base.py `L1_projection`), on plain arrays per row.
//
// Given a centre x ∈ [0,1]^d and a perturbation y, find δ with ‖y + δ‖₁ ≤ ε and
// x + y + δ ∈ [0,1]^d, closest to 0. Per coordinate the magnitude |y_i| shrinks by
// clamp(α, v_i, |y_i|), where v_i = max(0, distance of x_i + y_i outside the box) is the least
// shrink that the box demands. h(α) = Σ_i clamp(α, v_i, |y_i|) is piecewise linear and
// nondecreasing with breakpoints {v_i} (slope +1 after each) and {|y_i|} (slope −1 after each);
// α solves h(α) = ‖y‖₁ − ε. If the box alone already brings ‖·‖₁ to ε or below, δ only
// clips to the box. The breakpoints are sorted once and α found by the reference's bisection
// (⌈log₂ 2d⌉ halvings over the sorted positions), then interpolated on its segment.
import { argsortNonNegative } from './fab-projection';

const f32 = Math.fround;

export interface L1Scratch {
  keys: Float64Array;
  s: Float64Array;
  size: Float64Array;
}

export function l1Scratch(d: number): L1Scratch {
  return { keys: new Float64Array(2 * d), s: new Float64Array(2 * d), size: new Float64Array(2 * d) };
}

/**
 * Writes into `out` (length d) the δ for one row: centre `x`, perturbation `y`, radius `eps`.
 * `scratch` (from l1Scratch(d)) may be reused across rows of the same length.
 *
 * Arithmetic as the reference's float32 tensors (each elementwise result rounded to float32,
 * cumulative sums accumulated in double then rounded, as PyTorch's CPU cumsum), because APGD-L1
 * counts the nonzero coordinates of x_best − x, and whether (x + y) − y rounds back to x
 * depends on the last bit of y. Only the two row sums are correctly rounded float64 sums, where
 * PyTorch's summation order may differ by an ulp.
 */
export function l1BoxProjectionRow(
  x: ArrayLike<number>,
  y: ArrayLike<number>,
  eps: number,
  out: { [i: number]: number; length: number },
  scratch: L1Scratch = l1Scratch(x.length),
): void {
  const d = x.length;
  const { keys, s, size } = scratch;
  // u_i = min(0, 1 − x − y, x + y) ≤ 0 (minus the box violation); l_i = −|y_i|.
  let uSum = 0;
  let yAbs = 0;
  for (let i = 0; i < d; i++) {
    const u = Math.min(0, f32(f32(1 - x[i]) - y[i]), f32(x[i] + y[i]));
    keys[i] = -u + 0; // + 0: −0 → +0 for the radix sort
    keys[d + i] = Math.abs(y[i]);
    uSum += u;
    yAbs += Math.abs(y[i]);
  }
  const s1 = f32(-uSum); // h(0)
  const c = f32(f32(eps) - f32(yAbs));
  if (!(f32(s1 + c) < 0)) {
    // The box clip alone is within the ball.
    for (let i = 0; i < d; i++) out[i] = Math.sign(y[i]) * -keys[i];
    return;
  }
  const order = argsortNonNegative(keys);
  const n2 = 2 * d;
  // size[k]: slope of h after the k-th breakpoint; s[k] = h(next breakpoint).
  let acc = 0;
  let cum = 0;
  for (let k = 0; k < n2; k++) {
    acc += order[k] < d ? 1 : -1;
    size[k] = acc;
    const bs = keys[order[k]];
    const bs2 = k + 1 < n2 ? keys[order[k + 1]] : 0;
    cum += f32(f32(bs2 - bs) * acc);
    s[k] = f32(s1 + f32(cum));
  }
  let lb = 0;
  let ub = n2 - 1;
  const iters = Math.ceil(Math.log2(n2));
  for (let it = 0; it < iters; it++) {
    const mid = Math.floor((lb + ub) / 2);
    if (f32(s[mid] + c) < 0) lb = mid;
    else ub = mid;
  }
  const bs2lb = lb + 1 < n2 ? keys[order[lb + 1]] : 0;
  const alpha = f32(f32(f32(-s[lb] - c) / size[lb + 1]) + bs2lb);
  for (let i = 0; i < d; i++) {
    const shrink = Math.min(Math.max(keys[i], alpha), keys[d + i]);
    out[i] = Math.sign(y[i]) * -shrink;
  }
}

/** δ for every row of x and y (flattened, `d` values per row). */
export function l1BoxProjection(x: ArrayLike<number>, y: ArrayLike<number>, d: number, eps: number | ArrayLike<number>): Float32Array {
  const rows = x.length / d;
  const out = new Float32Array(x.length);
  const scratch = l1Scratch(d);
  const row = new Float64Array(d);
  for (let r = 0; r < rows; r++) {
    const o = r * d;
    l1BoxProjectionRow(sub(x, o, d), sub(y, o, d), typeof eps === 'number' ? eps : eps[r], row, scratch);
    out.set(row, o);
  }
  return out;
}

function sub(a: ArrayLike<number>, o: number, d: number): ArrayLike<number> {
  return ArrayBuffer.isView(a) ? (a as unknown as Float32Array).subarray(o, o + d) : Array.prototype.slice.call(a, o, o + d);
}
