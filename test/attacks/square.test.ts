// Square's schedule of the square size (AutoAttack p_selection and Python rounding).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { squareP, squareSide } from '../../src/attacks/square';

test('Square: p halves after iterations 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000', () => {
  const at = (it: number) => squareP(it, 0.8, 10000, false);
  assert.deepEqual([0, 10, 11, 50, 51, 200, 201, 500, 501, 1000, 1001, 2000, 2001, 4000, 4001, 6000, 6001, 8000, 8001].map(at), [
    0.8, 0.8, 0.4, 0.4, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125, 0.00625, 0.00625, 0.003125, 0.003125, 0.0015625,
  ]);
  // Rescaled to the budget: with 5000 queries iteration 6 counts as 12 (> 10).
  assert.equal(squareP(5, 0.8, 5000, true), 0.8);
  assert.equal(squareP(6, 0.8, 5000, true), 0.4);
  assert.equal(squareP(6, 0.8, 5000, false), 0.8);
});

test('Square: side = round(√(p·h·w)) with Python rounding, clamped to [1, min(h, w)]', () => {
  assert.equal(squareSide(0.8, 32, 32), 29); // √819.2 = 28.6
  assert.equal(squareSide(0.25, 5, 5), 2); // √6.25 = 2.5 → 2 (half to even)
  assert.equal(squareSide(0.49, 5, 5), 4); // 3.5 → 4
  assert.equal(squareSide(1e-6, 32, 32), 1);
  assert.equal(squareSide(1, 4, 8), 4);
});
