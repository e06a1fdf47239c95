// HopSkipJumpAttack (Chen, Jordan, Wainwright 2020), untargeted, L2 or L∞, following the
// authors' code (Jianbo-Lab/HSJA, hsja.py: hsja, initialize, binary_search_batch,
// approximate_gradient, geometric_progression_for_stepsize, select_delta). Decision-based:
// it sees the model only through argmax(target.logits(x)) (one query per image), per example:
//  * init: uniform noise in [0,1]^d until one is misclassified, then a binary search on the
//    blend (1 − t)x + t·noise down to a t-interval of 0.001;
//  * binary search toward x to the boundary: L2 on the blend, t-interval θ = γ/d^{3/2};
//    L∞ on the clip to [x − t, x + t] from t = ‖x' − x‖∞, interval min(θ, θ‖x' − x‖∞),
//    θ = γ/d²; the result is the point at the adversarial end of the interval;
//  * each iteration j = 1, 2, …: the gradient direction at the boundary point x_b from
//    n_j = min(⌊initEvals·√j⌋, maxEvals) probes x_b + δ_j u (u Gaussian for L2, uniform in
//    [−1,1]^d for L∞, normalised to ‖u‖₂ = 1; probes clipped to [0,1] and u taken back from
//    the clipped probe), φ = ±1 by the decision, ĝ = mean((φ − mean φ)·u) (mean(±u) when all
//    decisions agree), normalised; δ₁ = 0.1, then δ_j = √d·θ·D (L2) or d·θ·D (L∞) with D the
//    distance of the previous iteration's point before its binary search (as the code);
//    step v = ĝ (L2) or sign ĝ (L∞) of size ξ = ‖x_b − x‖/√j halved until x_b + ξv
//    (clipped) is misclassified, then the binary search from there.
// Query budget: `queries` per example, counting every decision including the clean check,
// never exceeded: a phase that would exceed it is cut short (a shorter gradient estimate;
// an unfinished search keeps its adversarial end) and the example stops. The result per
// example is the closest adversarial point any binary search returned (so the reported
// distance never increases over the iterations). Examples run as independent state machines
// whose pending queries are batched into one forward per round (at most `CHUNK` probes per
// example per round, so memory stays O(batch·CHUNK·pixels)); each example draws from its own
// fork of ctx.rng (labelled by its row), so its result depends on its own image, label and
// row only, not on the other rows of the batch.
//
// Result convention (./min-norm.ts): `distances` = the best distance found per example (+∞
// where no misclassified noise was found within the budget, 0 when x is already
// misclassified); with `eps` set, rows farther than eps come back as x. `queries` = total.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { predict } from './common';
import { noYield } from './interrupt';
import { distanceNorm, minNormEpsParam, runMinNorm } from './min-norm';
import { checkLinfBudget, defineAttack, posInt, posNum } from './params';
import type { AttackContext, AttackTarget } from './types';

const schema = z
  .object({
    norm: z.enum(['L2', 'Linf']).default('L2'),
    /** Budget of the reported robust accuracy (./min-norm.ts); absent: every fooling point counts. */
    eps: minNormEpsParam(),
    /** Query budget per example (every decision counts, the clean check included). */
    queries: posInt(1000),
    /** Iterations at most (the authors' num_iterations); the budget usually ends the run first. */
    steps: posInt(40),
    /** Probes of the first gradient estimate; iteration j uses ⌊initEvals·√j⌋. */
    initEvals: posInt(100),
    maxEvals: posInt(10000),
    /** Binary-search threshold θ = γ/d^{3/2} (L2) or γ/d² (L∞). */
    gamma: posNum(1.0),
  })
  .strict()
  .superRefine(checkLinfBudget);
export type HsjParams = z.output<typeof schema>;

/** Probes per example per round. */
const CHUNK = 128;
/** Rows per forward pass of the batched decisions. */
const FORWARD_ROWS = 512;

type Norm = 'L2' | 'Linf';

/** A batch of `count` images to classify, flattened; the answer: 1 where misclassified. */
interface Query {
  images: Float32Array;
  count: number;
}

export interface HsjExampleResult {
  best: Float32Array | null;
  dist: number;
  used: number;
  /** Distance of the iterate after the initial search and after each iteration. */
  trace: number[];
}

function distance(a: Float32Array, b: Float32Array, norm: Norm): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i] - b[i]);
    s = norm === 'L2' ? s + v * v : Math.max(s, v);
  }
  return norm === 'L2' ? Math.sqrt(s) : s;
}

const clip01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);

/** One example's attack as a generator of queries; `budget` excludes the clean check. */
function* hsjExample(x: Float32Array, p: HsjParams, rng: Rng, budget: number): Generator<Query, HsjExampleResult, Uint8Array> {
  const d = x.length;
  const norm = p.norm;
  const theta = norm === 'L2' ? p.gamma / (Math.sqrt(d) * d) : p.gamma / (d * d);
  let used = 0;
  const trace: number[] = [];
  let best: Float32Array | null = null;
  let bestDist = Infinity;
  const offer = (pt: Float32Array) => {
    const dd = distance(pt, x, norm);
    if (dd < bestDist) {
      bestDist = dd;
      best = Float32Array.from(pt);
    }
    return dd;
  };
  function* ask(images: Float32Array, count: number): Generator<Query, Uint8Array, Uint8Array> {
    used += count;
    return yield { images, count };
  }
  const done = (): HsjExampleResult => ({ best, dist: bestDist, used, trace });

  // Initialisation: misclassified uniform noise, then the blend search toward x.
  let noise: Float32Array | null = null;
  while (used < budget) {
    const cand = rng.fillUniform(new Float32Array(d), 0, 1);
    if ((yield* ask(cand, 1))[0]) {
      noise = cand;
      break;
    }
  }
  if (!noise) return done();
  const blend = (t: number) => Float32Array.from(x, (v, i) => (1 - t) * v + t * noise![i]);
  let lo = 0;
  let hi = 1;
  while (hi - lo > 0.001 && used < budget) {
    const mid = (hi + lo) / 2;
    if ((yield* ask(blend(mid), 1))[0]) hi = mid;
    else lo = mid;
  }
  let cur: Float32Array = blend(hi);

  /** Binary search from a misclassified x' toward x; returns the adversarial end and whether it finished. */
  function* toBoundary(xp: Float32Array): Generator<Query, { pt: Float32Array; finished: boolean }, Uint8Array> {
    const d0 = distance(xp, x, norm);
    const project = (t: number) =>
      norm === 'L2'
        ? Float32Array.from(x, (v, i) => (1 - t) * v + t * xp[i])
        : Float32Array.from(x, (v, i) => Math.min(Math.max(xp[i], v - t), v + t));
    let low = 0;
    let high = norm === 'L2' ? 1 : d0;
    const thr = norm === 'L2' ? theta : Math.min(d0 * theta, theta);
    while ((high - low) / thr > 1) {
      if (used >= budget) return { pt: project(high), finished: false };
      const mid = (high + low) / 2;
      if ((yield* ask(project(mid), 1))[0]) high = mid;
      else low = mid;
    }
    return { pt: project(high), finished: true };
  }

  let distPost = distance(cur, x, norm);
  let res = yield* toBoundary(cur);
  cur = res.pt;
  let dist = offer(cur);
  trace.push(dist);
  if (!res.finished) return done();

  const g = new Float64Array(d);
  const s0 = new Float64Array(d);
  const s1 = new Float64Array(d);
  for (let j = 1; j <= p.steps && used < budget; j++) {
    const delta = j === 1 ? 0.1 : norm === 'L2' ? Math.sqrt(d) * theta * distPost : d * theta * distPost;
    const evals = Math.min(Math.trunc(p.initEvals * Math.sqrt(j)), p.maxEvals, budget - used);
    // Gradient direction from `evals` probes, in chunks: ĝ ∝ Σ φu − mean(φ)·Σu.
    s0.fill(0);
    s1.fill(0);
    let sumF = 0;
    for (let start = 0; start < evals; start += CHUNK) {
      const k = Math.min(CHUNK, evals - start);
      const probes = new Float32Array(k * d);
      const us = new Float64Array(k * d);
      for (let r = 0; r < k; r++) {
        const u = us.subarray(r * d, (r + 1) * d);
        let ss = 0;
        for (let i = 0; i < d; i++) {
          u[i] = norm === 'L2' ? rng.normal() : rng.uniform(-1, 1);
          ss += u[i] * u[i];
        }
        const inv = 1 / Math.sqrt(ss);
        for (let i = 0; i < d; i++) {
          const v = clip01(cur[i] + delta * u[i] * inv);
          probes[r * d + i] = v;
          u[i] = (v - cur[i]) / delta;
        }
      }
      const dec = yield* ask(probes, k);
      for (let r = 0; r < k; r++) {
        const f = dec[r] ? 1 : -1;
        sumF += f;
        for (let i = 0; i < d; i++) {
          const u = us[r * d + i];
          s0[i] += u;
          s1[i] += f * u;
        }
      }
    }
    const fMean = sumF / evals;
    let gn = 0;
    for (let i = 0; i < d; i++) {
      g[i] = fMean === 1 ? s0[i] : fMean === -1 ? -s0[i] : s1[i] - fMean * s0[i];
      gn += g[i] * g[i];
    }
    gn = Math.sqrt(gn);
    if (!(gn > 0)) break; // no direction (all probes clipped to x_b): nothing to follow
    const update = Float64Array.from(g, (v) => (norm === 'Linf' ? Math.sign(v) : v / gn));

    // Geometric step: ξ = dist/√j, halved until x_b + ξv is misclassified.
    let xi = dist / Math.sqrt(j);
    let stepped: Float32Array | null = null;
    while (used < budget) {
      const cand = Float32Array.from(cur, (v, i) => clip01(v + xi * update[i]));
      if ((yield* ask(cand, 1))[0]) {
        stepped = cand;
        break;
      }
      xi /= 2;
    }
    if (!stepped) break;
    distPost = distance(stepped, x, norm);
    res = yield* toBoundary(stepped);
    cur = res.pt;
    dist = offer(cur);
    trace.push(dist);
    if (!res.finished) break;
  }
  return done();
}

/**
 * Runs one generator per example, batching their pending queries into rounds of forwards on
 * the target (hard labels only: a query is misclassified ⟺ argmax ≠ label).
 */
async function drive(
  target: AttackTarget,
  shape: [number, number, number],
  labels: Int32Array,
  gens: Generator<Query, HsjExampleResult, Uint8Array>[],
  yieldPoint: () => Promise<void>,
): Promise<HsjExampleResult[]> {
  const results: (HsjExampleResult | null)[] = gens.map(() => null);
  const pending = new Map<number, Query>();
  gens.forEach((g, i) => {
    const r = g.next(new Uint8Array(0));
    if (r.done) results[i] = r.value;
    else pending.set(i, r.value);
  });
  const d = shape[0] * shape[1] * shape[2];
  while (pending.size > 0) {
    await yieldPoint();
    const owners = [...pending.keys()];
    const total = owners.reduce((s, i) => s + pending.get(i)!.count, 0);
    const all = new Float32Array(total * d);
    const rowLabels = new Int32Array(total);
    let off = 0;
    for (const i of owners) {
      const q = pending.get(i)!;
      all.set(q.images.subarray(0, q.count * d), off * d);
      rowLabels.fill(labels[i], off, off + q.count);
      off += q.count;
    }
    const wrong = new Uint8Array(total);
    for (let s = 0; s < total; s += FORWARD_ROWS) {
      const k = Math.min(FORWARD_ROWS, total - s);
      const t = tf.tensor4d(all.subarray(s * d, (s + k) * d), [k, ...shape]);
      const pred = await predict(target, t).finally(() => t.dispose());
      for (let r = 0; r < k; r++) wrong[s + r] = pred[r] !== rowLabels[s + r] ? 1 : 0;
    }
    off = 0;
    for (const i of owners) {
      const q = pending.get(i)!;
      const r = gens[i].next(wrong.subarray(off, off + q.count));
      off += q.count;
      if (r.done) {
        results[i] = r.value;
        pending.delete(i);
      } else pending.set(i, r.value);
    }
  }
  return results as HsjExampleResult[];
}

/**
 * HopSkipJump on a batch whose rows are all classified correctly (nothing is checked here);
 * `budget` per example excludes the clean check. Returns per row the best point (x where
 * none), its distance (+∞ where none), queries used and the distance trace.
 */
export async function hsjRun(
  ctx: Pick<AttackContext, 'target' | 'rng' | 'yieldPoint'>,
  x: tf.Tensor4D,
  labels: Int32Array,
  p: HsjParams,
  budget: number,
  rows: readonly number[] = Array.from(labels, (_, i) => i),
): Promise<{ xAdv: tf.Tensor4D; dist: Float32Array; queries: Int32Array; traces: number[][] }> {
  const [n, h, w, c] = x.shape;
  const d = h * w * c;
  const flat = (await x.data()) as Float32Array;
  const gens = Array.from({ length: n }, (_, i) => hsjExample(flat.slice(i * d, (i + 1) * d), p, ctx.rng.fork(`hopskipjump-${rows[i]}`), budget));
  const results = await drive(ctx.target, [h, w, c], labels, gens, ctx.yieldPoint ?? noYield);
  const out = Float32Array.from(flat);
  results.forEach((r, i) => {
    if (r.best) out.set(r.best, i * d);
  });
  return {
    xAdv: tf.tensor4d(out, x.shape),
    dist: Float32Array.from(results, (r) => r.dist),
    queries: Int32Array.from(results, (r) => r.used),
    traces: results.map((r) => r.trace),
  };
}

export const hopskipjump = defineAttack<HsjParams>({
  name: 'hopskipjump',
  description: 'HopSkipJump, decision-based (hard labels only), L2 or L∞, query budget per example; minimal norm in `distances`, kept only within eps if set (Chen et al. 2020)',
  norm: 'l2',
  normOf: (p) => distanceNorm(p.norm),
  schema,
  attack: async (ctx, x, y, p) => {
    const out = await runMinNorm(
      ctx,
      x,
      y,
      p.eps,
      async (xs, ys, idx) => {
        const r = await hsjRun(ctx, xs, ys, p, p.queries - 1, idx);
        return { xAdv: r.xAdv, dist: r.dist, queries: r.queries };
      },
      { cleanQueries: true },
    );
    const queries = out.queries!.reduce((s, q) => s + q, 0);
    return { xAdv: out.xAdv, distances: out.distances, queries };
  },
});
