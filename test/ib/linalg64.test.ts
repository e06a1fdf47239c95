import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng';
import { choleskyInPlace, doubleCentre, gaussJordanInverse, matMul64, matMul64Js, spdInverse } from '../../src/ib/linalg64';
import { nativeMatMul64 } from '../../src/engine/native/linalg';

function randomSpd(rng: Rng, m: number, ridge: number): Float64Array {
  const b = new Float64Array(m * m);
  for (let i = 0; i < b.length; i++) b[i] = rng.normal();
  const a = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < m; k++) s += b[i * m + k] * b[j * m + k];
      a[i * m + j] = s + (i === j ? ridge : 0);
    }
  }
  return a;
}

function maxAbsOffIdentity(p: Float64Array, m: number): number {
  let worst = 0;
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) worst = Math.max(worst, Math.abs(p[i * m + j] - (i === j ? 1 : 0)));
  return worst;
}

test('spdInverse: A·A⁻¹ = I, symmetric result, for odd and even sizes', () => {
  const rng = new Rng(1);
  for (const m of [1, 2, 5, 13, 40]) {
    const a = randomSpd(rng, m, 0.5);
    const keep = Float64Array.from(a);
    const inv = spdInverse(a, m, new Float64Array(m * m), new Float64Array(m * m));
    const p = matMul64(keep, inv, m, new Float64Array(m * m));
    assert.ok(maxAbsOffIdentity(p, m) < 1e-9, `m=${m}: ${maxAbsOffIdentity(p, m)}`);
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) assert.equal(inv[i * m + j], inv[j * m + i]);
  }
});

test('choleskyInPlace reports the failing pivot; spdInverse falls back to Gauss–Jordan', () => {
  // Symmetric but indefinite: eigenvalues 3 and −1.
  const a = Float64Array.from([1, 2, 2, 1]);
  assert.equal(choleskyInPlace(Float64Array.from(a), 2), 1);
  const inv = spdInverse(Float64Array.from(a), 2, new Float64Array(4), new Float64Array(4));
  const want = [-1 / 3, 2 / 3, 2 / 3, -1 / 3];
  inv.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-12, `${v} vs ${want[i]}`));
  const gj = gaussJordanInverse(Float64Array.from([0, 1, 1, 0]), 2, new Float64Array(4)); // needs pivoting
  assert.deepEqual(Array.from(gj), [0, 1, 1, 0]);
});

test('spdInverse turns NaN input into an all-NaN inverse (a NaN loss, not an exception)', () => {
  const a = Float64Array.from([2, NaN, NaN, 2]);
  const inv = spdInverse(a, 2, new Float64Array(4), new Float64Array(4));
  assert.ok(Array.from(inv).every(Number.isNaN));
});

test('doubleCentre: H·S·H has zero row and column sums and keeps a centred matrix fixed', () => {
  const rng = new Rng(2);
  const m = 6;
  const s = randomSpd(rng, m, 0);
  const c = doubleCentre(s, m, new Float64Array(m * m), new Float64Array(m));
  for (let i = 0; i < m; i++) {
    let row = 0;
    let col = 0;
    for (let j = 0; j < m; j++) {
      row += c[i * m + j];
      col += c[j * m + i];
    }
    assert.ok(Math.abs(row) < 1e-12 && Math.abs(col) < 1e-12);
  }
  const again = doubleCentre(c, m, new Float64Array(m * m), new Float64Array(m));
  again.forEach((v, i) => assert.ok(Math.abs(v - c[i]) < 1e-12));
});

test('matMul64 through the native addon is bit-identical to the JS loop (when the addon is built)', (t) => {
  const m = 100;
  const r = new Rng(64);
  const a = Float64Array.from({ length: m * m }, () => r.normal());
  const b = Float64Array.from({ length: m * m }, () => r.normal());
  for (let i = 0; i < m * m; i += 7) a[i] = 0; // the skipped zero terms
  const want = matMul64Js(a, b, m, new Float64Array(m * m));
  const got = new Float64Array(m * m);
  if (!nativeMatMul64(a, b, m, got)) {
    t.diagnostic('native addon not loaded; only the JS path exists');
    return;
  }
  assert.deepEqual(got, want);
  assert.deepEqual(matMul64(a, b, m, new Float64Array(m * m)), want);
  // and it is a product: (a·b)[3][5] = Σ_k a[3][k]·b[k][5]
  let s = 0;
  for (let k = 0; k < m; k++) s += a[3 * m + k] * b[k * m + 5];
  assert.ok(Math.abs(got[3 * m + 5] - s) <= 1e-12 * (1 + Math.abs(s)));
});
