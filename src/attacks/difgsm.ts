// DI-FGSM / M-DI²-FGSM (Xie et al. 2019, "Improving Transferability of Adversarial Examples
// with Input Diversity"), torchattacks 3.3.0 semantics (DIFGSM.forward / input_diversity):
// the MI-FGSM loop (./mifgsm.ts) where each step's gradient is taken through a random
// resize-and-pad of the iterate. decay 0 (default) is DI²-FGSM, decay > 0 is M-DI²-FGSM.
//
// Input diversity, per step and for the whole batch (four draws from ctx.rng, in this order,
// each u ∈ [0,1); an integer in [lo, hi) is lo + ⌊u·(hi − lo)⌋, as torch.randint):
//   W = image width, R = ⌊W·resizeRate⌋; (lo, hi) = (R, W) if resizeRate < 1 else (W, R);
//   rnd ∈ [lo, hi);  padTop ∈ [0, hi − rnd);  padLeft ∈ [0, hi − rnd);
//   if u < diversityProb: bilinear resize to rnd×rnd (PyTorch F.interpolate, align_corners
//   False, no antialiasing), then zero-pad to hi×hi (bottom/right get the rest); else x as is.
// torchattacks 3.3.0 interpolates bilinearly (not nearest). The resize + pad is linear in the
// image, so it is applied as two small interpolation matrices (rows, then columns) with
// tf.matMul: differentiable on every backend (the wasm ResizeBilinearGrad kernel ignores
// half-pixel centres, i.e. it would be the gradient of a different resize). resizeRate > 1
// makes the input larger than the image: only models that accept that size (global pooling)
// can be attacked so. A transfer attack like MI-FGSM: crafted on ctx.surrogate ?? ctx.target.
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { Rng } from '../engine/rng';
import { UserError } from '../errors';
import { momentumIterative } from './mifgsm';
import { defineAttack, epsParam, posInt, stepParam } from './params';

const schema = z
  .object({
    eps: epsParam(8 / 255),
    alpha: stepParam().default(2 / 255),
    steps: posInt(10),
    /** 0: DI²-FGSM; > 0: M-DI²-FGSM (momentum as MI-FGSM). */
    decay: z.number().min(0).finite().default(0),
    resizeRate: z.number().positive().finite().default(0.9),
    diversityProb: z.number().min(0).max(1).default(0.5),
    randomStart: z.boolean().default(false),
  })
  .strict();
export type DifgsmParams = z.output<typeof schema>;

/**
 * [outSize × inSize] matrix of PyTorch's bilinear resize (align_corners=False) from inSize to
 * `size` samples, placed at rows offset..offset+size−1 of a zero-padded output of outSize.
 */
export function bilinearPadMatrix(inSize: number, size: number, outSize: number, offset: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / size;
  for (let i = 0; i < size; i++) {
    const src = Math.max(scale * (i + 0.5) - 0.5, 0);
    const i0 = Math.floor(src);
    const i1 = i0 < inSize - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    m[(offset + i) * inSize + i0] += 1 - l1;
    m[(offset + i) * inSize + i1] += l1;
  }
  return m;
}

/** out[n,h',w',c] = Σ A[h',h]·B[w',w]·x[n,h,w,c] for A [H',H], B [W',W]. */
export function applySeparable(x: tf.Tensor4D, a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, c] = x.shape;
    const h2 = a.shape[0];
    const w2 = b.shape[0];
    const rows = tf.matMul(a, tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [h, n * w * c])); // [H', n·W·C]
    const t = tf.reshape(tf.transpose(tf.reshape(rows, [h2, n, w, c]), [2, 1, 0, 3]), [w, n * h2 * c]);
    const cols = tf.matMul(b, t); // [W', n·H'·C]
    return tf.transpose(tf.reshape(cols, [w2, n, h2, c]), [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/** torchattacks' input diversity for one step: the four draws, and the map (null: identity). */
export function inputDiversity(rng: Rng, shape: readonly number[], resizeRate: number, diversityProb: number): ((xa: tf.Tensor4D) => tf.Tensor4D) | null {
  const [, h, w] = shape;
  const r = Math.trunc(w * resizeRate);
  const [lo, hi] = resizeRate < 1 ? [r, w] : [w, r];
  if (hi <= lo) throw new UserError(`difgsm: resizeRate ${resizeRate} leaves no size to draw for ${w}-pixel images (⌊${w}·rate⌋ = ${r}); use a rate further from 1`);
  const randint = (a: number, b: number) => a + Math.floor(rng.next() * (b - a));
  const rnd = randint(lo, hi);
  const padTop = randint(0, hi - rnd);
  const padLeft = randint(0, hi - rnd);
  if (!(rng.next() < diversityProb)) return null;
  const a = bilinearPadMatrix(h, rnd, hi, padTop);
  const b = bilinearPadMatrix(w, rnd, hi, padLeft);
  return (xa) => tf.tidy(() => applySeparable(xa, tf.tensor2d(a, [hi, h]), tf.tensor2d(b, [hi, w])));
}

export const difgsm = defineAttack<DifgsmParams>({
  name: 'difgsm',
  description: 'Diverse-input iterative FGSM (DI²; M-DI² with decay > 0), L∞, random resize+pad each step, transfer attack: crafted on --surrogate if given (Xie et al. 2019)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => ({
    xAdv: await momentumIterative(ctx, x, y, {
      ...p,
      transform: (rng, xa) => inputDiversity(rng, xa.shape, p.resizeRate, p.diversityProb),
    }),
  }),
});
