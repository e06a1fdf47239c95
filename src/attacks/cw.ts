// CW-L2 (method.md §5, torchattacks 3.3.0 semantics). Optimise w in tanh space,
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
import { z } from 'zod';
import { tf } from '../engine/tf';
import { oneHot, swap } from './common';
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
  })
  .strict();
export type CwParams = z.output<typeof schema>;

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

export async function cwL2(ctx: Pick<AttackContext, 'target' | 'yieldPoint'>, x: tf.Tensor4D, y: tf.Tensor1D, p: CwParams, opts: { trace?: boolean } = {}): Promise<CwRun> {
  const { target } = ctx;
  const yieldPoint = ctx.yieldPoint ?? noYield;
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
      tf.dispose([w, m, v, bestAdv, bestL2, yOh, yIdx, ...(frozen ? [frozen] : [])]);
      throw err;
    }
    let adv!: tf.Tensor4D;
    let curL2!: tf.Tensor1D;
    let logits!: tf.Tensor2D;
    const { value, grad } = tf.valueAndGrad((wi: tf.Tensor) => {
      adv = tf.keep(toAdv(wi));
      curL2 = tf.keep(tf.sum(tf.square(tf.sub(adv, x)), [1, 2, 3]) as tf.Tensor1D);
      logits = tf.keep(target.logits(adv));
      return tf.add(tf.sum(curL2), tf.mul(p.c, tf.sum(cwF(logits, yOh, p.kappa, p.margin)))) as tf.Scalar;
    })(w);

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
  tf.dispose([w, m, v, bestL2, yOh, yIdx, ...(frozen ? [frozen] : [])]);
  return { xAdv: bestAdv, bestL2Sq, stoppedAt, costTrace };
}

export const cw = defineAttack<CwParams>({
  name: 'cw',
  description: 'Carlini–Wagner L2: Adam in tanh space on ‖δ‖² + c·f, best misclassified iterate (torchattacks)',
  norm: 'l2',
  schema,
  attack: async (ctx, x, y, p) => {
    const run = await cwL2(ctx, x, y, p);
    // The evaluator reports the mean L2 over the examples that were correct and got fooled.
    const distances = Float32Array.from(run.bestL2Sq, (l2) => (l2 < 1e10 ? Math.sqrt(l2) : Infinity));
    return { xAdv: run.xAdv, distances, extra: { earlyStopStep: run.stoppedAt ?? -1 } };
  },
});
