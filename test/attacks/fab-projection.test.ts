// FAB's L∞ projection onto {z : w·z = b} ∩ [0,1]^n: hand cases for each branch, and random
// cases against an independent bisection on the radius λ.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { argsortNonNegative, projectLinfRow } from '../../src/attacks/fab-projection';
import { Rng } from '../../src/engine/rng';

function project(t: number[], w: number[], b: number): number[] {
  const out = new Float64Array(t.length);
  projectLinfRow(t, w, b, out);
  return Array.from(out);
}

function close(a: number[], b: number[], tol = 1e-12): boolean {
  return a.length === b.length && a.every((v, i) => Math.abs(v - b[i]) <= tol);
}

test('radius below every box distance: all coordinates move by λ', () => {
  // w·t = 1, target 0.5: both coordinates go down by 0.25.
  assert.ok(close(project([0.5, 0.5], [1, 1], 0.5), [-0.25, -0.25]));
});

test('radius past a box side: the saturated coordinate stops there', () => {
  // Need −0.4: the first coordinate can only give 0.1, so λ = 0.3 for the second.
  assert.ok(close(project([0.1, 0.5], [1, 1], 0.2), [-0.1, -0.3]));
});

test('hyperplane out of the box: every coordinate goes to its box side', () => {
  assert.ok(close(project([0.1, 0.1], [1, 1], -1), [-0.1, -0.1]));
});

test('w·t < b flips the direction; zero weights and an all-zero w do not move', () => {
  // w·t = −0.5 < 1: move up where w > 0, down where w < 0; λ = 0.5.
  const d = project([0.5, 0.5, 0.3], [1, -2, 0], 1);
  assert.ok(close(d, [0.5, -0.5, 0]), `${d}`);
  assert.ok(close(project([0.2, 0.7], [0, 0], 3), [0, 0]));
});

test('random cases: on the plane, in the box, and the smallest L∞ step (vs bisection on λ)', () => {
  const rng = new Rng(5);
  let reachable = 0;
  for (let c = 0; c < 300; c++) {
    const n = 1 + rng.int(40);
    const t = Array.from({ length: n }, () => (rng.next() < 0.15 ? rng.int(2) : rng.next()));
    const w = Array.from({ length: n }, () => (rng.next() < 0.1 ? 0 : rng.normal()));
    const wt = w.reduce((s, wi, i) => s + wi * t[i], 0);
    const b = wt + rng.normal() * 0.5 * Math.sqrt(n) * 0.3;
    const d = project(t, w, b);
    for (let i = 0; i < n; i++) assert.ok(t[i] + d[i] >= -1e-12 && t[i] + d[i] <= 1 + 1e-12, 'inside the box');
    // Independent solution: the achievable change of w·z within radius λ is
    // h(λ) = Σ|w_i|·min(λ, room_i) in the needed direction; bisect h(λ) = |b − w·t|.
    const need = b - wt;
    const dir = Math.sign(need);
    const room = t.map((ti, i) => (w[i] * dir > 0 ? 1 - ti : w[i] * dir < 0 ? ti : 0));
    const h = (lam: number) => w.reduce((s, wi, i) => s + Math.abs(wi) * Math.min(lam, room[i]), 0);
    const maxLam = Math.max(...room, 0);
    if (h(maxLam) < Math.abs(need) - 1e-9) continue; // unreachable: covered by the hand case
    reachable++;
    let lo = 0;
    let hi = maxLam;
    for (let it = 0; it < 200; it++) {
      const mid = (lo + hi) / 2;
      if (h(mid) < Math.abs(need)) lo = mid;
      else hi = mid;
    }
    const onPlane = w.reduce((s, wi, i) => s + wi * (t[i] + d[i]), 0);
    assert.ok(Math.abs(onPlane - b) < 1e-9 * (1 + Math.abs(b)), `case ${c}: w·z = ${onPlane}, b = ${b}`);
    const linf = Math.max(...d.map(Math.abs));
    assert.ok(Math.abs(linf - hi) < 1e-9, `case ${c}: ‖d‖∞ = ${linf}, optimum ${hi}`);
  }
  assert.ok(reachable > 150, `only ${reachable} reachable cases`);
});

test('radix argsort: stable ascending order of non-negative doubles (ties, zeros, image size)', () => {
  const rng = new Rng(8);
  for (const n of [1, 2, 17, 3072]) {
    const keys = Float64Array.from({ length: n }, () => {
      const r = rng.next();
      return r < 0.2 ? 0 : r < 0.4 ? 0.5 : r < 0.5 ? 1 - Math.fround(rng.next() * 1e-3) : rng.next() * Math.pow(2, -rng.int(40));
    });
    const want = Array.from({ length: n }, (_, i) => i).sort((i, j) => keys[i] - keys[j] || i - j);
    assert.deepEqual(Array.from(argsortNonNegative(keys)), want, `n = ${n}`);
  }
});
