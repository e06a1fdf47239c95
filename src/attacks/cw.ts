// CW-L2 (docs/method.md §5, torchattacks 3.3.0 semantics). Optimise w in tanh space,
// x'(w) = (tanh w + 1)/2, with Adam (β = (.9, .999), ε 1e-8, PyTorch's bias correction) on
//   cost = Σ_i ‖x'_i − x_i‖² + c·Σ_i f_i,   f = max(z_y − z_other, −κ).
// Per example keep the lowest-‖·‖² iterate that is misclassified (prediction from the same
// forward, before the Adam step); every max(⌊steps/10⌋, 1) steps stop if the batch cost rose
// since the last check. Examples never misclassified come back unchanged.
//
// margin 'standard': z_other = max_{j≠y} z_j (true class excluded).
// margin 'torchattacks': z_other = max_j ((1 − onehot)∘z)_j, i.e. the true slot counts as 0
//   (so f ≡ 0 for log-softmax outputs, and 0 competes whenever all other logits are < 0).
//
// Pixels at exactly 0 or 1: atanh(±1) = ±∞ in the reference, which freezes them (zero
// gradient, zero Adam step). 'torchattacks' reproduces that exactly by holding those pixels
// at x (w there is unused). 'standard' starts from atanh(2·clip(x, 1e-6, 1 − 1e-6) − 1), so
// saturated pixels can move inward.
//
// Binary search over c (Carlini & Wagner 2017, §V; nn_robust_attacks l2_attack.py), when
// `binarySteps` > 1: per example, c starts at `initialC` and each binary step is one full run
// as above (Adam restarted from x) with that example's c. After a step, an example that was
// misclassified at some iterate sets its upper bound hi ← min(hi, c) and c ← (lo + hi)/2; one
// that was not sets lo ← max(lo, c) and c ← c·10 while it has no upper bound, (lo + hi)/2
// after. The result per example is the lowest-L2 misclassified iterate over all steps.
// `binarySteps` 1 (the default) is the fixed-c torchattacks attack with `c`, unchanged.
// initialC defaults to 1e-3, C&W's INITIAL_CONST (also Foolbox's initial_const); success is
// judged by the argmax as in torchattacks (C&W additionally require the margin κ).
//
// `eot` > 1: the gradient (and the cost the early stop reads) is the mean over that many
// stochastic forwards (./eot.ts); the misclassification of an iterate is judged by the
// target's eval forward.
import { z } from 'zod';
import { tf } from '../engine/tf';
import { oneHot, swap } from './common';
import { Eot, eotParam, withEotExtra } from './eot';
import { noYield } from './interrupt';
import { defineAttack, posInt, posNum } from './params';
import type { AttackContext } from './types';

export const CW_MARGINS = ['standard', 'torchattacks'] as const;
export type CwMargin = (typeof CW_MARGINS)[number];

const schema = z
  .object({
    c: z.number().min(0).finite().default(0.1),
    kappa: z.number().min(0).finite().default(0),
    steps: posInt(200),
    lr: posNum(0.1),
    margin: z.enum(CW_MARGINS).default('standard'),
    /** 1: fixed c (torchattacks). More: C&W's binary search over c from `initialC`. */
    binarySteps: posInt(1),
    initialC: posNum(1e-3),
    eot: eotParam(),
  })
  .strict();
export type CwParams = z.output<typeof schema>;
/** What one run of the optimisation needs. */
export type CwRunParams = Pick<CwParams, 'c' | 'kappa' | 'steps' | 'lr' | 'margin'>;

export interface CwRunOptions {
  /** Record the batch cost of every step (a device sync per step). */
  trace?: boolean;
  /** Per-example c, replacing `c` (the binary search). */
  cPerExample?: Float32Array;
  eot?: Eot;
}

const SAT = 1e-6;
const ADAM = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/** The CW objective term f per example (no reduction). */
export function cwF(logits: tf.Tensor2D, yOneHot: tf.Tensor2D, kappa: number, margin: CwMargin): tf.Tensor1D {
  return tf.tidy(() => {
    const real = tf.sum(tf.mul(yOneHot, logits), 1);
    const others =
      margin === 'torchattacks'
        ? tf.mul(tf.sub(1, yOneHot), logits)
        : tf.where(tf.cast(yOneHot, 'bool'), tf.fill(logits.shape, -Infinity), logits);
    return tf.maximum(tf.sub(real, tf.max(others, 1)), -kappa) as tf.Tensor1D;
  });
}

export interface CwRun {
  xAdv: tf.Tensor4D;
  /** Squared L2 of the kept iterate per example; 1e10 where none was misclassified. */
  bestL2Sq: Float32Array;
  /** Step at which the early-stop check fired, or null when all steps ran. */
  stoppedAt: number | null;
  /** Batch cost per step (only when asked for: it costs a device sync per step). */
  costTrace?: number[];
}

export async function cwL2(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, y: tf.Tensor1D, p: CwRunParams, opts: CwRunOptions = {}): Promise<CwRun> {
  const { target } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
  const eot = opts.eot?.active ? opts.eot : null;
  const cVec = opts.cPerExample ? tf.tensor1d(opts.cPerExample) : null;
  const yOh = oneHot(y, target.numClasses);
  const yIdx = tf.cast(y, 'int32');
  const frozen = p.margin === 'torchattacks' ? tf.logicalOr(tf.lessEqual(x, 0), tf.greaterEqual(x, 1)) : null;
  let w = tf.tidy(() => {
    const u = tf.sub(tf.mul(p.margin === 'torchattacks' ? x : tf.clipByValue(x, SAT, 1 - SAT), 2), 1);
    const atanh = tf.mul(tf.log(tf.div(tf.add(1, u), tf.sub(1, u))), 0.5);
    return (frozen ? tf.where(frozen, tf.zerosLike(x), atanh) : atanh) as tf.Tensor4D;
  });
  const toAdv = (wi: tf.Tensor): tf.Tensor4D => {
    const a = tf.mul(tf.add(tf.tanh(wi), 1), 0.5);
    return (frozen ? tf.where(frozen, x, a) : a) as tf.Tensor4D;
  };
  const l2Of = (a: tf.Tensor4D) => tf.sum(tf.square(tf.sub(a, x)), [1, 2, 3]) as tf.Tensor1D;
  const costOf = (l2: tf.Tensor1D, logits: tf.Tensor2D): tf.Scalar => {
    const f = cwF(logits, yOh, p.kappa, p.margin);
    return tf.add(tf.sum(l2), cVec ? tf.sum(tf.mul(cVec, f)) : tf.mul(p.c, tf.sum(f))) as tf.Scalar;
  };
  const owned = () => [yOh, yIdx, ...(frozen ? [frozen] : []), ...(cVec ? [cVec] : [])];
  let m: tf.Tensor4D = tf.zerosLike(x);
  let v: tf.Tensor4D = tf.zerosLike(x);
  let bestAdv = tf.clone(x);
  let bestL2 = tf.fill([x.shape[0]], 1e10) as tf.Tensor1D;
  let prevCost = 1e10;
  let stoppedAt: number | null = null;
  const costTrace: number[] | undefined = opts.trace ? [] : undefined;
  const checkEvery = Math.max(Math.floor(p.steps / 10), 1);

  for (let step = 0; step < p.steps; step++) {
    try {
      await yieldPoint();
    } catch (err) {
      tf.dispose([w, m, v, bestAdv, bestL2, ...owned()]);
      throw err;
    }
    let adv!: tf.Tensor4D;
    let curL2!: tf.Tensor1D;
    let logits!: tf.Tensor2D;
    let value: tf.Scalar;
    let grad: tf.Tensor;
    if (!eot) {
      ({ value, grad } = tf.valueAndGrad((wi: tf.Tensor) => {
        adv = tf.keep(toAdv(wi));
        curL2 = tf.keep(l2Of(adv));
        logits = tf.keep(target.logits(adv));
        return costOf(curL2, logits);
      })(w));
    } else {
      // Mean cost and gradient over the stochastic forwards; the prediction from the eval forward.
      const fwds = eot.forwards();
      const parts = fwds.map((f) => tf.valueAndGrad((wi: tf.Tensor) => {
        const a = toAdv(wi);
        return costOf(l2Of(a), f(a));
      })(w));
      value = tf.tidy(() => tf.div(tf.addN(parts.map((r) => r.value)), fwds.length) as tf.Scalar);
      grad = tf.tidy(() => tf.div(tf.addN(parts.map((r) => r.grad)), fwds.length));
      tf.dispose(parts.flatMap((r) => [r.value, r.grad]));
      adv = tf.tidy(() => toAdv(w));
      curL2 = tf.tidy(() => l2Of(adv));
      logits = target.logits(adv);
    }

    // Adam step (torch.optim.Adam): θ ← θ − lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε).
    const t = step + 1;
    const bc1 = 1 - ADAM.beta1 ** t;
    const bc2 = 1 - ADAM.beta2 ** t;
    const [m2, v2] = tf.tidy(() => [
      tf.add(tf.mul(m, ADAM.beta1), tf.mul(grad, 1 - ADAM.beta1)) as tf.Tensor4D,
      tf.add(tf.mul(v, ADAM.beta2), tf.mul(tf.square(grad), 1 - ADAM.beta2)) as tf.Tensor4D,
    ]);
    m = swap(m, m2);
    v = swap(v, v2);
    w = swap(
      w,
      tf.tidy(() => tf.sub(w, tf.mul(tf.div(m, tf.add(tf.div(tf.sqrt(v), Math.sqrt(bc2)), ADAM.eps)), p.lr / bc1)) as tf.Tensor4D),
    );

    // Best misclassified iterate, judged on this step's (pre-update) forward.
    const [bestL2n, bestAdvn] = tf.tidy(() => {
      const wrong = tf.notEqual(tf.cast(tf.argMax(logits, 1), 'int32'), yIdx);
      const better = tf.logicalAnd(wrong, tf.greater(bestL2, curL2));
      return [
        tf.where(better, curL2, bestL2) as tf.Tensor1D,
        tf.where(tf.reshape(better, [-1, 1, 1, 1]), adv, bestAdv) as tf.Tensor4D,
      ];
    });
    bestL2 = swap(bestL2, bestL2n);
    bestAdv = swap(bestAdv, bestAdvn);

    const isCheck = step % checkEvery === 0;
    const cost = isCheck || costTrace ? (await value.data())[0] : NaN;
    costTrace?.push(cost);
    tf.dispose([value, grad, adv, curL2, logits]);
    if (isCheck) {
      if (cost > prevCost) {
        stoppedAt = step;
        break;
      }
      prevCost = cost;
    }
  }
  const bestL2Sq = (await bestL2.data()) as Float32Array;
  tf.dispose([w, m, v, bestL2, ...owned()]);
  return { xAdv: bestAdv, bestL2Sq, stoppedAt, costTrace };
}

export interface CwSearch {
  xAdv: tf.Tensor4D;
  /** Squared L2 of the kept point per example; 1e10 where no step misclassified it. */
  bestL2Sq: Float32Array;
  /** Per example, the c of the last binary step. */
  c: Float64Array;
  /** Binary steps whose run stopped early (the cost rose at a check). */
  earlyStops: number;
}

/** C&W's binary search over c (see the header); `binarySteps` runs of `cwL2`. */
export async function cwBinarySearch(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, y: tf.Tensor1D, p: CwParams, eot?: Eot): Promise<CwSearch> {
  const n = x.shape[0];
  const lo = new Float64Array(n);
  const hi = new Float64Array(n).fill(1e10);
  const c = new Float64Array(n).fill(p.initialC);
  const bestL2Sq = new Float32Array(n).fill(1e10);
  let best = tf.clone(x);
  let earlyStops = 0;
  try {
    for (let b = 0; b < p.binarySteps; b++) {
      const run = await cwL2(ctx, x, y, p, { cPerExample: Float32Array.from(c), eot });
      if (run.stoppedAt !== null) earlyStops++;
      const better = Array.from(run.bestL2Sq, (l2, i) => l2 < bestL2Sq[i]);
      best = swap(best, tf.tidy(() => tf.where(tf.reshape(tf.tensor1d(better.map(Number), 'bool'), [-1, 1, 1, 1]), run.xAdv, best) as tf.Tensor4D));
      run.xAdv.dispose();
      for (let i = 0; i < n; i++) {
        if (better[i]) bestL2Sq[i] = run.bestL2Sq[i];
        if (run.bestL2Sq[i] < 1e10) {
          hi[i] = Math.min(hi[i], c[i]);
          if (hi[i] < 1e9) c[i] = (lo[i] + hi[i]) / 2;
        } else {
          lo[i] = Math.max(lo[i], c[i]);
          c[i] = hi[i] < 1e9 ? (lo[i] + hi[i]) / 2 : c[i] * 10;
        }
      }
    }
  } catch (err) {
    best.dispose();
    throw err;
  }
  return { xAdv: best, bestL2Sq, c, earlyStops };
}

export const cw = defineAttack<CwParams>({
  name: 'cw',
  description: 'Carlini–Wagner L2: Adam in tanh space on ‖δ‖² + c·f, best misclassified iterate (torchattacks); optional binary search over c (C&W 2017)',
  norm: 'l2',
  schema,
  attack: async (ctx, x, y, p) => {
    const eot = Eot.of(ctx, p.eot);
    // The evaluator reports the mean L2 over the examples that were correct and got fooled.
    const distancesOf = (l2Sq: Float32Array) => Float32Array.from(l2Sq, (l2) => (l2 < 1e10 ? Math.sqrt(l2) : Infinity));
    if (p.binarySteps === 1) {
      const run = await cwL2(ctx, x, y, p, { eot });
      return withEotExtra({ xAdv: run.xAdv, distances: distancesOf(run.bestL2Sq), extra: { earlyStopStep: run.stoppedAt ?? -1 } }, eot);
    }
    const res = await cwBinarySearch(ctx, x, y, p, eot);
    return withEotExtra({ xAdv: res.xAdv, distances: distancesOf(res.bestL2Sq), extra: { earlyStoppedBinarySteps: res.earlyStops } }, eot);
  },
});
