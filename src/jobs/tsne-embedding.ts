// Exact t-SNE (van der Maaten & Hinton 2008) for up to a few thousand points, in float64:
//   p_{j|i} ∝ exp(−β_i D_ij) with β_i set by bisection so that exp(H(P_i)) = perplexity,
//   p_ij = (p_{j|i} + p_{i|j}) / 2n,   q_ij ∝ (1 + ‖y_i − y_j‖²)⁻¹,
//   ∂KL/∂y_i = 4 Σ_j (p_ij − q_ij)(y_i − y_j)(1 + ‖y_i − y_j‖²)⁻¹,
// gradient descent with momentum (0.5, then 0.8), per-coordinate gains (+0.2 / ×0.8, floor
// 0.01) and early exaggeration (×12 for the first 250 iterations), as in the reference
// implementation. O(n²) memory and time per iteration: fine for the ≤ 2,000 points of a figure.
import { Rng } from '../engine/rng';

export interface TsneOptions {
  /** Effective number of neighbours (default 30; clipped to (n − 1)/3). */
  perplexity?: number;
  iterations?: number;
  /** Step size; `auto` = max(n / exaggeration / 4, 50) (scikit-learn's rule). */
  learningRate?: number | 'auto';
  earlyExaggeration?: number;
  exaggerationIterations?: number;
  seed?: number;
}

export const MAX_TSNE_POINTS = 5000;

/** Squared Euclidean distances of n row vectors of length d (row-major), n×n. */
export function pairwiseSqDistances(data: ArrayLike<number>, n: number, d: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) {
        const t = data[i * d + k] - data[j * d + k];
        s += t * t;
      }
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

/**
 * Row-conditional probabilities p_{j|i} (n×n, rows sum to 1, zero diagonal) whose entropy is
 * log(perplexity), by bisection on the precision β_i. Returns the β_i as well.
 */
export function conditionalProbabilities(sqDist: Float64Array, n: number, perplexity: number, tol = 1e-5, maxIter = 200): { p: Float64Array; betas: Float64Array } {
  const p = new Float64Array(n * n);
  const betas = new Float64Array(n);
  const target = Math.log(perplexity);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    // Shifting a row's distances by its minimum leaves p_{j|i} unchanged and avoids underflow.
    let dmin = Infinity;
    for (let j = 0; j < n; j++) if (j !== i && sqDist[i * n + j] < dmin) dmin = sqDist[i * n + j];
    let beta = 1;
    let lo = 0;
    let hi = Infinity;
    for (let it = 0; it < maxIter; it++) {
      let sum = 0;
      let dot = 0;
      for (let j = 0; j < n; j++) {
        const dd = j === i ? 0 : sqDist[i * n + j] - dmin;
        const v = j === i ? 0 : Math.exp(-beta * dd);
        row[j] = v;
        sum += v;
        dot += v * dd;
      }
      const h = Math.log(sum) + (beta * dot) / sum;
      if (Math.abs(h - target) < tol) break;
      // Entropy falls as β grows.
      if (h > target) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (beta + lo) / 2;
      }
    }
    let sum = 0;
    for (let j = 0; j < n; j++) sum += row[j];
    for (let j = 0; j < n; j++) p[i * n + j] = row[j] / sum;
    betas[i] = beta;
  }
  return { p, betas };
}

/** Symmetric joint probabilities p_ij = (p_{j|i} + p_{i|j}) / 2n, floored at 1e-12. */
export function jointProbabilities(sqDist: Float64Array, n: number, perplexity: number): Float64Array {
  const { p } = conditionalProbabilities(sqDist, n, perplexity);
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = i === j ? 0 : Math.max((p[i * n + j] + p[j * n + i]) / (2 * n), 1e-12);
  }
  return out;
}

/** KL(P‖Q) and its gradient w.r.t. the 2-D embedding y (n×2), with P multiplied by `exaggeration`. */
export function tsneKlAndGradient(P: Float64Array, y: Float64Array, n: number, exaggeration = 1): { kl: number; grad: Float64Array } {
  const num = new Float64Array(n * n);
  let z = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = y[2 * i] - y[2 * j];
      const dy = y[2 * i + 1] - y[2 * j + 1];
      const v = 1 / (1 + dx * dx + dy * dy);
      num[i * n + j] = v;
      num[j * n + i] = v;
      z += 2 * v;
    }
  }
  const grad = new Float64Array(2 * n);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    let gx = 0;
    let gy = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const v = num[i * n + j];
      const q = Math.max(v / z, 1e-300);
      const pij = P[i * n + j];
      kl += pij * Math.log(pij / q);
      const w = (exaggeration * pij - v / z) * v;
      gx += w * (y[2 * i] - y[2 * j]);
      gy += w * (y[2 * i + 1] - y[2 * j + 1]);
    }
    grad[2 * i] = 4 * gx;
    grad[2 * i + 1] = 4 * gy;
  }
  return { kl, grad };
}

/** A 2-D embedding (n×2, row-major) of the points whose squared distances are given. */
export function tsne(sqDist: Float64Array, n: number, opts: TsneOptions = {}): { embedding: Float64Array; kl: number } {
  if (n > MAX_TSNE_POINTS) throw new Error(`exact t-SNE is O(n²); ${n} points is more than ${MAX_TSNE_POINTS}`);
  if (sqDist.length !== n * n) throw new Error(`tsne: expected ${n}×${n} distances, got ${sqDist.length}`);
  const y = new Float64Array(2 * n);
  if (n < 2) return { embedding: y, kl: 0 };
  const perplexity = Math.max(1, Math.min(opts.perplexity ?? 30, (n - 1) / 3));
  const iterations = opts.iterations ?? 1000;
  const exaggeration = opts.earlyExaggeration ?? 12;
  const exIters = opts.exaggerationIterations ?? 250;
  const lr = opts.learningRate === undefined || opts.learningRate === 'auto' ? Math.max(n / exaggeration / 4, 50) : opts.learningRate;
  const P = jointProbabilities(sqDist, n, perplexity);
  const rng = new Rng(opts.seed ?? 0).fork('tsne-init');
  for (let i = 0; i < 2 * n; i++) y[i] = 1e-4 * rng.normal();
  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  let kl = 0;
  for (let it = 0; it < iterations; it++) {
    const ex = it < exIters ? exaggeration : 1;
    const momentum = it < exIters ? 0.5 : 0.8;
    const g = tsneKlAndGradient(P, y, n, ex);
    kl = g.kl;
    for (let k = 0; k < 2 * n; k++) {
      const sameSign = g.grad[k] > 0 === update[k] > 0;
      gains[k] = Math.max(sameSign ? gains[k] * 0.8 : gains[k] + 0.2, 0.01);
      update[k] = momentum * update[k] - lr * gains[k] * g.grad[k];
      y[k] += update[k];
    }
    let mx = 0;
    let my = 0;
    for (let i = 0; i < n; i++) {
      mx += y[2 * i];
      my += y[2 * i + 1];
    }
    for (let i = 0; i < n; i++) {
      y[2 * i] -= mx / n;
      y[2 * i + 1] -= my / n;
    }
  }
  // The KL of the final embedding (the loop's value is from before the last update).
  kl = tsneKlAndGradient(P, y, n, 1).kl;
  return { embedding: y, kl };
}
