import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/engine/rng';
import { conditionalProbabilities, jointProbabilities, pairwiseSqDistances, tsne, tsneKlAndGradient } from '../../src/jobs/tsne-embedding';
import { niceTicks, parseMarkers, renderFigure } from '../../src/report/svg';

function clusters(perClass: number, classes: number, d: number, spread: number, seed = 1): { data: Float64Array; labels: number[] } {
  const rng = new Rng(seed);
  const centres = Array.from({ length: classes }, () => Array.from({ length: d }, () => 10 * rng.normal()));
  const data = new Float64Array(perClass * classes * d);
  const labels: number[] = [];
  for (let c = 0; c < classes; c++) {
    for (let i = 0; i < perClass; i++) {
      const row = c * perClass + i;
      labels.push(c);
      for (let k = 0; k < d; k++) data[row * d + k] = centres[c][k] + spread * rng.normal();
    }
  }
  return { data, labels };
}

test('pairwise squared distances by hand', () => {
  const d = pairwiseSqDistances([0, 0, 3, 4, 1, 1], 3, 2);
  assert.deepEqual(Array.from(d), [0, 25, 2, 25, 0, 13, 2, 13, 0]);
});

test('bisection calibrates every row to the requested perplexity (exp of the entropy)', () => {
  const { data } = clusters(20, 3, 5, 1);
  const n = 60;
  const D = pairwiseSqDistances(data, n, 5);
  for (const perp of [5, 15]) {
    const { p } = conditionalProbabilities(D, n, perp);
    for (let i = 0; i < n; i++) {
      let h = 0;
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const v = p[i * n + j];
        sum += v;
        if (v > 0) h -= v * Math.log(v);
      }
      assert.ok(Math.abs(sum - 1) < 1e-12, `row ${i} sums to 1`);
      assert.equal(p[i * n + i], 0);
      assert.ok(Math.abs(Math.exp(h) - perp) < 1e-3 * perp, `row ${i}: perplexity ${Math.exp(h)} vs ${perp}`);
    }
  }
  const P = jointProbabilities(D, n, 10);
  let total = 0;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    total += P[i * n + j];
    assert.equal(P[i * n + j], P[j * n + i]);
  }
  assert.ok(Math.abs(total - 1) < n * n * 1e-12 + 1e-12, `sums to 1 up to the 1e-12 floor (${total})`);
});

test('the KL gradient matches central differences', () => {
  const { data } = clusters(4, 2, 3, 1, 5);
  const n = 8;
  const P = jointProbabilities(pairwiseSqDistances(data, n, 3), n, 2);
  const rng = new Rng(9);
  const y = Float64Array.from({ length: 2 * n }, () => rng.normal());
  const { grad } = tsneKlAndGradient(P, y, n);
  const h = 1e-6;
  for (let k = 0; k < 2 * n; k++) {
    const yp = Float64Array.from(y);
    const ym = Float64Array.from(y);
    yp[k] += h;
    ym[k] -= h;
    const num = (tsneKlAndGradient(P, yp, n).kl - tsneKlAndGradient(P, ym, n).kl) / (2 * h);
    assert.ok(Math.abs(num - grad[k]) < 1e-6 + 1e-5 * Math.abs(num), `coordinate ${k}: ${grad[k]} vs ${num}`);
  }
});

test('well-separated clusters stay separated in the embedding (1-NN accuracy 100%), deterministically', () => {
  const { data, labels } = clusters(25, 4, 10, 0.5, 3);
  const n = 100;
  const D = pairwiseSqDistances(data, n, 10);
  const a = tsne(D, n, { perplexity: 10, iterations: 400, seed: 1 });
  const b = tsne(D, n, { perplexity: 10, iterations: 400, seed: 1 });
  assert.deepEqual(Array.from(a.embedding), Array.from(b.embedding));
  let correct = 0;
  for (let i = 0; i < n; i++) {
    let best = -1;
    let bd = Infinity;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const dd = (a.embedding[2 * i] - a.embedding[2 * j]) ** 2 + (a.embedding[2 * i + 1] - a.embedding[2 * j + 1]) ** 2;
      if (dd < bd) {
        bd = dd;
        best = j;
      }
    }
    if (labels[best] === labels[i]) correct++;
  }
  assert.equal(correct, n);
  assert.ok(a.kl < 1, `final KL ${a.kl}`);
});

test('nice ticks and marker round trip', () => {
  const t = niceTicks(0, 1, 5);
  assert.equal(t.length, 6);
  t.forEach((v, i) => assert.ok(Math.abs(v - 0.2 * i) < 1e-12));
  assert.deepEqual(niceTicks(1, 50, 5), [10, 20, 30, 40, 50]);
  const svg = renderFigure({
    panels: [{ xLabel: 'x', yLabel: 'y', lines: [{ name: 'a & "b"', color: '#000', points: [[1, 2], [3, 4.5]] }] }],
  });
  assert.match(svg, /^<\?xml/);
  assert.deepEqual(parseMarkers(svg), [
    { series: 'a & "b"', x: 1, y: 2 },
    { series: 'a & "b"', x: 3, y: 4.5 },
  ]);
});
