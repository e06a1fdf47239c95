// HSIC estimators of IB-RAR (docs/method.md §1.1) as differentiable tfjs ops.
//
//   hsicCca         normalised-CCA HSIC tr(R_A R_B), R = Kc (Kc + εmI)⁻¹   (the one IB-RAR uses)
//   hsicPlain       HBaR's `hsic_regular`:    mean(Kc_A ∘ Kc_Bᵀ) = tr(Kc_A Kc_B)/m²
//   hsicNormalized  HBaR's `hsic_normalized`: hsicPlain(A,B)/√(hsicPlain(A,A)·hsicPlain(B,B))
//
// Numerics (docs/method.md §1.1 Rec.): features are flattened to [m, d] and column-centred, the
// Gram Zc Zcᵀ is formed on the backend in float32, and everything m×m after it (distances,
// expm1, centring, the ridge solve, the trace) runs on the host in float64. The gradient is
// analytic (tf.customGrad), so the forward may read data to the host.
//
// With S = H K H (symmetric; same traces as the reference's K H), A = S + λI, λ = εm:
//   R = I − λA⁻¹,  h = Σ_ij R_A[i,j] R_B[i,j],  ∂h/∂S_A = λ A⁻¹ R_B A⁻¹,
//   ∂h/∂K = H (∂h/∂S) H =: Q,
//   gaussian: P = −(1/v) K ∘ Q,  ∂h/∂Z = 4 (diag(P1) − P) Zc;   linear: ∂h/∂Z = 2 Q Zc.
// (Zc may replace Z: the matrices multiplying it have zero column sums.)
import { tf } from '../engine/tf';
import { centredColumnsHost, centredKernelFromGram, centreRight, HSIC_EPS, HSIC_SIGMA, type CentredKernel, type KernelKind } from './kernels';
import { doubleCentre, dot64, matMul64, spdInverse } from './linalg64';

export { HSIC_EPS, HSIC_SIGMA, type KernelKind } from './kernels';

export interface HsicOptions {
  /** Kernel width σ (variance 2σ²d). Default 5. */
  sigma?: number;
  /** Ridge ε of the CCA form (λ = εm). Default 1e-5. */
  eps?: number;
  /** Kernel of the first argument. Default gaussian (the reference always uses it). */
  kernelA?: KernelKind;
  /** Kernel of the second argument. Default gaussian. */
  kernelB?: KernelKind;
}

type Estimator = 'cca' | 'plain' | 'normalized';

/** [m, d] float32 view of an input of any rank ≥ 1 (row-major; feature order is irrelevant). */
function flatten2d(z: tf.Tensor): tf.Tensor2D {
  if (z.rank < 1 || z.shape[0] < 1) throw new Error(`HSIC input needs a batch axis with ≥ 1 example, got shape [${z.shape}]`);
  const m = z.shape[0];
  const d = z.size / m;
  const f = z.dtype === 'float32' ? z : tf.cast(z, 'float32');
  return tf.reshape(f, [m, d]);
}

function centreColumns(z2: tf.Tensor2D): tf.Tensor2D {
  return tf.sub(z2, tf.mean(z2, 0, true));
}

/**
 * Z·Zᵀ with an explicit transpose: for 2-D [100, 4096] tfjs-wasm 4.22's matMul with
 * transposeB measured ~10× slower (56 ms vs 4–7 ms).
 */
function gramOf(z2: tf.Tensor2D): tf.Tensor2D {
  return tf.matMul(z2, tf.transpose(z2));
}

/** A float32 Gram matrix read to the host: m×m row-major, of features d wide. */
export interface HostGram {
  gram: Float32Array;
  m: number;
  d: number;
}

/** Float32 Gram Zc·Zcᵀ of the column-centred, flattened features, left on the backend. */
export function centredGramTensor(z: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => gramOf(centreColumns(flatten2d(z))));
}

/** Float32 Gram of the column-centred, flattened features. */
export function centredGram(z: tf.Tensor): HostGram {
  const gram = centredGramTensor(z);
  const data = gram.dataSync() as Float32Array;
  gram.dispose();
  return { gram: data, m: z.shape[0], d: z.size / z.shape[0] };
}

/** centredGram without a synchronous read, for backends that cannot read synchronously. */
export async function readCentredGram(z: tf.Tensor): Promise<HostGram> {
  const gram = centredGramTensor(z);
  try {
    return { gram: (await gram.data()) as Float32Array, m: z.shape[0], d: z.size / z.shape[0] };
  } finally {
    gram.dispose();
  }
}

/** Host float64 centred kernel S = H K H of a tensor (no gradient). */
export function centredKernel(z: tf.Tensor, kind: KernelKind, sigma = HSIC_SIGMA): CentredKernel {
  const { gram, m, d } = centredGram(z);
  return centredKernelFromGram(gram, m, d, kind, sigma);
}

/**
 * The reference's kernel matrix K (gaussian exp(−D/(2σ²d)) or linear Z Zᵀ), or its
 * right-centred Kc = K H when `centred` — float64, row-major m×m. For checks and logging;
 * the estimators never need it.
 */
export function kernelMatrix(z: tf.Tensor, kind: KernelKind, sigma = HSIC_SIGMA, centred = false): Float64Array {
  let k: Float64Array;
  if (kind === 'gaussian') {
    k = centredKernel(z, 'gaussian', sigma).k as Float64Array;
  } else {
    const g = tf.tidy(() => gramOf(flatten2d(z)));
    k = Float64Array.from(g.dataSync());
    g.dispose();
  }
  return centred ? centreRight(k, z.shape[0]) : k;
}

/** R = I − λA⁻¹ and A⁻¹ for one centred kernel (the CCA "side"). */
interface CcaSide {
  readonly lambda: number;
  readonly ainv: Float64Array;
  readonly r: Float64Array;
}

function ccaSide(ker: CentredKernel, eps: number): CcaSide {
  const m = ker.m;
  const n = m * m;
  const lambda = eps * m;
  const a = Float64Array.from(ker.s);
  for (let i = 0; i < m; i++) a[i * m + i] += lambda;
  const ainv = spdInverse(a, m, new Float64Array(n), new Float64Array(n));
  const r = new Float64Array(n);
  for (let i = 0; i < n; i++) r[i] = -lambda * ainv[i];
  for (let i = 0; i < m; i++) r[i * m + i] += 1;
  return { lambda, ainv, r };
}

/** ∂h/∂S_A = λ A⁻¹ W A⁻¹ for W = the (weighted) R of the other side(s). */
function ccaGradS(side: CcaSide, w: Float64Array, m: number): Float64Array {
  const t = matMul64(side.ainv, w, m, new Float64Array(m * m));
  const g = matMul64(t, side.ainv, m, new Float64Array(m * m));
  for (let i = 0; i < m * m; i++) g[i] *= side.lambda;
  return g;
}

/** The m×m matrix L (float64) with ∂h/∂Zc = L·Zc, from G = ∂h/∂S (symmetric), times `scale`. */
function featureGradOperator(ker: CentredKernel, g: Float64Array, scale: number): Float64Array {
  const m = ker.m;
  const q = doubleCentre(g, m, new Float64Array(m * m), new Float64Array(m)); // ∂h/∂K
  const out = new Float64Array(m * m);
  if (ker.kind === 'linear') {
    for (let i = 0; i < m * m; i++) out[i] = 2 * scale * q[i];
    return out;
  }
  const k = ker.k as Float64Array;
  const c = (-4 * scale) / ker.v; // L = 4(diag(P1) − P), P = −(1/v) K∘Q
  for (let i = 0; i < m; i++) {
    const oi = i * m;
    let rowSum = 0;
    for (let j = 0; j < m; j++) {
      const p = c * k[oi + j] * q[oi + j];
      rowSum += p;
      out[oi + j] = -p;
    }
    out[oi + i] += rowSum;
  }
  return out;
}

/**
 * Above this many multiply-adds (m·m·d) the product L·Zc of a linear-kernel input runs on the
 * backend in float32; below it, on the host in float64. A linear kernel is rank-deficient
 * (one-hot Y: rank k−1), so L carries 1/λ-sized null-space components that cancel in L·Zc —
 * fine in float64, ~10% off in float32. Gaussian kernels showed no such loss (golden and
 * finite-difference tests), so they always use the backend.
 */
const HOST_PRODUCT_MAX = 1 << 22;

/** dh/dx for the original input x, given the operator L (∂h/∂Zc = L·Zc). */
function inputGrad(x: tf.Tensor, op: Float64Array, m: number, kind: KernelKind): tf.Tensor {
  const d = x.size / m;
  if (kind === 'linear' && m * m * d <= HOST_PRODUCT_MAX) {
    const zc = centredColumnsHost(x.dataSync(), m, d);
    const g = new Float32Array(m * d);
    const row = new Float64Array(d);
    for (let i = 0; i < m; i++) {
      row.fill(0);
      for (let k = 0; k < m; k++) {
        const lik = op[i * m + k];
        if (lik === 0) continue;
        for (let j = 0; j < d; j++) row[j] += lik * zc[k * d + j];
      }
      g.set(row, i * d);
    }
    return tf.tensor(g, x.shape, 'float32');
  }
  return tf.tidy(() => {
    const zc = centreColumns(flatten2d(x));
    const g = tf.matMul(tf.tensor2d(Float32Array.from(op), [m, m]), zc);
    return tf.reshape(x.dtype === 'float32' ? g : tf.cast(g, x.dtype), x.shape);
  });
}

/**
 * ∂h/∂T for a gaussian-kernel argument T, from the operator L of featureGradOperator: the
 * float32 product L·Zc on the backend, shaped like T.
 */
export function tapGradient(t: tf.Tensor, op: Float64Array): tf.Tensor {
  return inputGrad(t, op, t.shape[0], 'gaussian');
}

function checkBatch(a: tf.Tensor, b: tf.Tensor): number {
  if (a.rank < 1 || b.rank < 1 || a.shape[0] !== b.shape[0] || a.shape[0] < 1) {
    throw new Error(`HSIC needs two inputs with the same batch size ≥ 1, got [${a.shape}] and [${b.shape}]`);
  }
  return a.shape[0];
}

interface PairResult {
  value: number;
  /** ∂h/∂S for side 0 (A) or 1 (B); computed lazily (only the backward pass needs it). */
  gradS(side: 0 | 1): Float64Array;
}

function evaluatePair(est: Estimator, ka: CentredKernel, kb: CentredKernel, eps: number): PairResult {
  const m = ka.m;
  const n = m * m;
  if (est === 'cca') {
    const sa = ccaSide(ka, eps);
    const sb = ccaSide(kb, eps);
    return {
      value: dot64(sa.r, sb.r, n),
      gradS: (side) => (side === 0 ? ccaGradS(sa, sb.r, m) : ccaGradS(sb, sa.r, m)),
    };
  }
  const inv = 1 / n; // HBaR: torch.mean over the m×m product
  const pab = dot64(ka.s, kb.s, n) * inv;
  if (est === 'plain') {
    return { value: pab, gradS: (side) => scaled(side === 0 ? kb.s : ka.s, inv) };
  }
  const paa = dot64(ka.s, ka.s, n) * inv;
  const pbb = dot64(kb.s, kb.s, n) * inv;
  const norm = Math.sqrt(paa * pbb);
  const h = pab / norm;
  return {
    value: h,
    // ∂h/∂S_A = (S_B/√(p_aa p_bb) − h S_A/p_aa)/m²  (and symmetrically for B)
    gradS: (side) => {
      const [own, other, pown] = side === 0 ? [ka.s, kb.s, paa] : [kb.s, ka.s, pbb];
      const g = new Float64Array(n);
      for (let i = 0; i < n; i++) g[i] = (other[i] / norm - (h * own[i]) / pown) * inv;
      return g;
    },
  };
}

function scaled(a: Float64Array, c: number): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * c;
  return out;
}

function pairOp(est: Estimator, a: tf.Tensor, b: tf.Tensor, opts: HsicOptions): tf.Scalar {
  const m = checkBatch(a, b);
  const sigma = opts.sigma ?? HSIC_SIGMA;
  const eps = opts.eps ?? HSIC_EPS;
  const op = tf.customGrad((...args: unknown[]) => {
    const [x, y, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([x, y]);
    const ka = centredKernel(x, opts.kernelA ?? 'gaussian', sigma);
    const kb = centredKernel(y, opts.kernelB ?? 'gaussian', sigma);
    const res = evaluatePair(est, ka, kb, eps);
    return {
      value: tf.scalar(res.value),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const s = dy.dataSync()[0];
        return [
          inputGrad(saved[0], featureGradOperator(ka, res.gradS(0), s), m, ka.kind),
          inputGrad(saved[1], featureGradOperator(kb, res.gradS(1), s), m, kb.kind),
        ];
      },
    };
  });
  return op(a, b) as tf.Scalar;
}

/**
 * Normalised-CCA HSIC of IB-RAR/HBaR (`hsic_normalized_cca`): tr(R_A R_B),
 * R = Kc (Kc + εmI)⁻¹. Differentiable w.r.t. both arguments; inputs of any rank [m, ...].
 * 0 ≤ value ≤ m − 1.
 */
export function hsicCca(a: tf.Tensor, b: tf.Tensor, opts: HsicOptions = {}): tf.Scalar {
  return pairOp('cca', a, b, opts);
}

/** HBaR's `hsic_regular`: mean(Kc_A ∘ Kc_Bᵀ) = tr(K_A H K_B H)/m² (biased HSIC with 1/m²). */
export function hsicPlain(a: tf.Tensor, b: tf.Tensor, opts: HsicOptions = {}): tf.Scalar {
  return pairOp('plain', a, b, opts);
}

/** HBaR's `hsic_normalized`: hsicPlain(A,B)/√(hsicPlain(A,A)·hsicPlain(B,B)) (CKA), in [0, 1]. */
export function hsicNormalized(a: tf.Tensor, b: tf.Tensor, opts: HsicOptions = {}): tf.Scalar {
  return pairOp('normalized', a, b, opts);
}

/** hsicCca as a float64 number, without recording anything for gradients' sake. */
export function hsicCcaValue(a: tf.Tensor, b: tf.Tensor, opts: HsicOptions = {}): number {
  checkBatch(a, b);
  const sigma = opts.sigma ?? HSIC_SIGMA;
  const ka = centredKernel(a, opts.kernelA ?? 'gaussian', sigma);
  const kb = centredKernel(b, opts.kernelB ?? 'gaussian', sigma);
  return evaluatePair('cca', ka, kb, opts.eps ?? HSIC_EPS).value;
}

/**
 * A constant second argument of hsicCca (X or one-hot Y): its R matrix, computed once per
 * batch and shared by every layer's HSIC term.
 */
export interface CcaTarget {
  readonly m: number;
  readonly kind: KernelKind;
  /** R = I − λ(H K H + λI)⁻¹, float64 m×m (symmetric). */
  readonly r: Float64Array;
  /**
   * Optional low-rank form R = F N Fᵀ (F: m×rank, stored transposed as rank×m; N: rank×rank),
   * known for label kernels; lets per-channel scores avoid a full inverse.
   */
  readonly lowRank?: { readonly rank: number; readonly ft: Float64Array; readonly n: Float64Array };
}

export function ccaTarget(z: tf.Tensor, kind: KernelKind, opts: { sigma?: number; eps?: number } = {}): CcaTarget {
  const ker = centredKernel(z, kind, opts.sigma ?? HSIC_SIGMA);
  return ccaTargetFromKernel(ker, opts.eps ?? HSIC_EPS);
}

export function ccaTargetFromKernel(ker: CentredKernel, eps = HSIC_EPS): CcaTarget {
  return { m: ker.m, kind: ker.kind, r: ccaSide(ker, eps).r };
}

/** hsicCca(T, target_k) for every target, and what its gradient needs, from T's Gram. */
export interface CcaManyHost {
  /** The HSIC values in float64, one per target. */
  values: number[];
  /**
   * The m×m operator L (float64) with ∂(Σ_k w_k·h_k)/∂Zc = L·Zc, for the weights w (the
   * upstream gradient of the values); tapGradient turns it into ∂/∂T.
   */
  gradOperator(weights: ArrayLike<number>): Float64Array;
}

/**
 * The host half of hsicCcaMany: everything after T's float32 Gram (gaussian kernel on T), in
 * float64. Pure, so the one-pass customGrad and the deferred path (src/train/deferred-ib.ts),
 * which reads the Gram before the gradient tape opens, share it.
 */
export function ccaManyFromGram(g: HostGram, targets: readonly CcaTarget[], opts: { sigma?: number; eps?: number } = {}): CcaManyHost {
  const { m, d } = g;
  for (const tg of targets) {
    if (tg.m !== m) throw new Error(`HSIC target has batch ${tg.m}, features have batch ${m}`);
  }
  const ker = centredKernelFromGram(g.gram, m, d, 'gaussian', opts.sigma ?? HSIC_SIGMA);
  const side = ccaSide(ker, opts.eps ?? HSIC_EPS);
  return {
    values: targets.map((tg) => dot64(side.r, tg.r, m * m)),
    gradOperator: (weights) => {
      const w = new Float64Array(m * m);
      targets.forEach((tg, k) => {
        const c = weights[k];
        if (c !== 0) for (let i = 0; i < m * m; i++) w[i] += c * tg.r[i];
      });
      return featureGradOperator(ker, ccaGradS(side, w, m), 1);
    },
  };
}

/**
 * [hsicCca(t, target_0), hsicCca(t, target_1), …] with t's kernel factorised once; the
 * gaussian kernel on t. Differentiable w.r.t. t only (the targets are constants). The
 * float64 values are also written to `out` when given (for logging without a read-back).
 * Reads t's Gram synchronously inside the forward: see src/train/deferred-ib.ts for backends
 * that cannot.
 */
export function hsicCcaMany(
  t: tf.Tensor,
  targets: readonly CcaTarget[],
  opts: { sigma?: number; eps?: number } = {},
  out?: Float64Array,
): tf.Tensor1D {
  const m = t.shape[0];
  for (const tg of targets) {
    if (tg.m !== m) throw new Error(`HSIC target has batch ${tg.m}, features have [${t.shape}]`);
  }
  const op = tf.customGrad((...args: unknown[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([x]);
    const host = ccaManyFromGram(centredGram(x), targets, opts);
    if (out) out.set(host.values);
    return {
      value: tf.tensor1d(host.values),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tapGradient(saved[0], host.gradOperator(dy.dataSync()))],
    };
  });
  return op(t) as tf.Tensor1D;
}
