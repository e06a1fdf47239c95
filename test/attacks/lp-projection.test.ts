// The L1-ball ∩ box projection of APGD-L1 / Square-L1 and FAB's L2 / L1 hyperplane projections,
// on random cases against independent solvers (bisection on the threshold, greedy order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { l1BoxProjectionRow } from '../../src/attacks/l1-projection';
import { projectL1Row, projectL2Row } from '../../src/attacks/fab-projection';
import { Rng } from '../../src/engine/rng';
import * as fs from 'fs';
import * as path from 'path';
import { REPO_ROOT } from '../helpers/golden';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const R: any = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'attacks', 'fixtures', 'reference-aa.json'), 'utf8'));

const f32 = (a: number[]) => Array.from(Float32Array.from(a));

/** Exact δ: shrink |y_i| by clamp(α, v_i, |y_i|), α by bisection so that ‖y + δ‖₁ = ε. */
function exactL1Box(x: number[], y: number[], eps: number): number[] {
  const v = x.map((xi, i) => Math.max(0, xi + y[i] - 1, -(xi + y[i])));
  const a = y.map(Math.abs);
  const need = a.reduce((s, e) => s + e, 0) - eps;
  const shrink = (al: number) => a.map((ai, i) => Math.min(Math.max(al, v[i]), ai));
  let alpha = 0;
  if (v.reduce((s, e) => s + e, 0) < need) {
    let lo = 0;
    let hi = Math.max(...a) + 1;
    for (let it = 0; it < 200; it++) {
      const mid = (lo + hi) / 2;
      if (shrink(mid).reduce((s, e) => s + e, 0) > need) hi = mid;
      else lo = mid;
    }
    alpha = hi;
  }
  return shrink(alpha).map((s, i) => -Math.sign(y[i]) * s);
}

test("L1-ball ∩ box projection equals AutoAttack's L1_projection on random rows", () => {
  let worst = 0;
  for (const batch of R.l1_projection as { d: number; eps: number; x: number[][]; y: number[][]; delta: number[][] }[]) {
    const out = new Float64Array(batch.d);
    batch.x.forEach((xr, r) => {
      l1BoxProjectionRow(Float32Array.from(xr), Float32Array.from(batch.y[r]), batch.eps, out);
      const scale = Math.max(1, batch.y[r].reduce((s, e) => s + Math.abs(e), 0));
      out.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - batch.delta[r][i]) / scale)));
    });
  }
  // float32 in both; the two row sums may differ by an ulp of Σ|y|.
  assert.ok(worst < 1e-6, `largest deviation ${worst}·max(1, Σ|y|)`);
});

test('L1-ball ∩ box projection: inside the box, and the exact projection except where the reference extrapolates', () => {
  const rng = new Rng(3);
  let quirk = 0;
  let branches = { box: 0, ball: 0 };
  for (let c = 0; c < 300; c++) {
    const d = 1 + rng.int(60);
    const x = f32(Array.from({ length: d }, () => (rng.next() < 0.2 ? Math.round(rng.next()) : rng.next())));
    const scale = [0.05, 0.3, 1.5][c % 3];
    const y = f32(Array.from({ length: d }, () => (rng.next() < 0.3 ? 0 : scale * rng.normal())));
    const eps = [0.1, 1, 5][rng.int(3)];
    const out = new Float64Array(d);
    l1BoxProjectionRow(x, y, eps, out);
    const want = exactL1Box(x, y, eps);
    const boxOnly = want.every((w, i) => Math.abs(w - Math.sign(y[i]) * -Math.max(0, x[i] + y[i] - 1, -(x[i] + y[i]))) < 1e-12);
    branches = boxOnly ? { ...branches, box: branches.box + 1 } : { ...branches, ball: branches.ball + 1 };
    for (let i = 0; i < d; i++) {
      const z = x[i] + y[i] + out[i];
      assert.ok(z >= -1e-6 && z <= 1 + 1e-6, `case ${c}: coordinate ${i} at ${z}`);
    }
    if (!want.every((w, i) => Math.abs(out[i] - w) <= 1e-5 * Math.max(1, Math.abs(y[i])))) {
      // The reference's bisection never looks left of its first segment: when the ball binds
      // before the second breakpoint, α is extrapolated from the next segment (case 104 here:
      // the result lies outside the ball). Rare; we keep the reference's answer.
      quirk++;
      continue;
    }
    const l1 = y.reduce((s, yi, i) => s + Math.abs(yi + out[i]), 0);
    // float32 as the reference: the threshold carries round-off ~1e-7 of Σ|y|.
    const yAbs = y.reduce((s, e) => s + Math.abs(e), 0);
    assert.ok(l1 <= eps + 2e-7 * yAbs + 1e-6 || boxOnly, `case ${c}: ‖y + δ‖₁ = ${l1} > ε ${eps}`);
  }
  assert.ok(branches.box > 20 && branches.ball > 20, JSON.stringify(branches));
  assert.ok(quirk <= 6, `${quirk} of 300 cases differ from the exact projection`);
});

/** min ‖d‖₂ with w·(t + d) = b, t + d ∈ [0,1]: d(λ) = clip(t − λw) − t, λ by bisection. */
function exactL2(t: number[], w: number[], b: number): number[] {
  const dot = (d: number[]) => w.reduce((s, wi, i) => s + wi * (t[i] + d[i]), 0);
  const at = (lam: number) => t.map((ti, i) => Math.min(Math.max(ti - lam * w[i], 0), 1) - ti);
  const sgn = dot(t.map(() => 0)) - b >= 0 ? 1 : -1;
  let lo = 0;
  let hi = 1;
  while (sgn * (dot(at(sgn * hi)) - b) > 0 && hi < 1e12) hi *= 2;
  for (let it = 0; it < 300; it++) {
    const mid = (lo + hi) / 2;
    if (sgn * (dot(at(sgn * mid)) - b) > 0) lo = mid;
    else hi = mid;
  }
  return at(sgn * hi);
}

/** min ‖d‖₁ with w·(t + d) = b in the box: whole coordinates by decreasing |w|, the last partly. */
function exactL1(t: number[], w: number[], b: number): number[] {
  let c = w.reduce((s, wi, i) => s + wi * t[i], 0) - b;
  const sgn = c >= 0 ? 1 : -1;
  c *= sgn;
  const order = t.map((_, i) => i).sort((p, q) => Math.abs(w[q]) - Math.abs(w[p]));
  const d = t.map(() => 0);
  for (const i of order) {
    if (c <= 0) break;
    const wi = w[i] * sgn;
    const full = (wi < 0 ? 1 : 0) - t[i]; // to the box side that lowers w·z
    const gain = -wi * full;
    if (gain >= c) {
      d[i] = -c / wi;
      c = 0;
    } else {
      d[i] = full;
      c -= gain;
    }
  }
  return d;
}

test("FAB's L2 and L1 projections equal the exact solutions (reachable hyperplanes) and reach the box corner otherwise", () => {
  const rng = new Rng(5);
  let unreachable = 0;
  for (let c = 0; c < 200; c++) {
    const n = 2 + rng.int(40);
    const t = Array.from({ length: n }, () => rng.next());
    const w = Array.from({ length: n }, () => rng.normal());
    const wt = w.reduce((s, wi, i) => s + wi * t[i], 0);
    const b = wt + rng.normal() * [0.1, 1, 5][c % 3];
    for (const [name, project, exact] of [
      ['L2', projectL2Row, exactL2],
      ['L1', projectL1Row, exactL1],
    ] as const) {
      const out = new Float64Array(n);
      project(t, w, b, out);
      const want = exact(t, w, b);
      const reached = Math.abs(w.reduce((s, wi, i) => s + wi * (t[i] + want[i]), 0) - b) < 1e-9;
      if (!reached) unreachable++;
      for (let i = 0; i < n; i++) {
        const z = t[i] + out[i];
        assert.ok(z >= -1e-9 && z <= 1 + 1e-9, `${name} case ${c}: coordinate ${i} at ${z}`);
        assert.ok(Math.abs(out[i] - want[i]) < 1e-7, `${name} case ${c}: d_${i} ${out[i]} vs exact ${want[i]}`);
      }
    }
  }
  assert.ok(unreachable > 10, `${unreachable} unreachable cases`);
});
