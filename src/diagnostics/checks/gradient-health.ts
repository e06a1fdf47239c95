// Check 5 (AutoAttack's checks.py; Carlini et al. 2019, §5.1): the input gradient of the loss
// at the clean inputs. Warnings: any example whose gradient is zero everywhere (AutoAttack's
// zero-gradient flag) or not finite; a model whose output changes between two identical
// forwards (a randomised defence: attack it with EOT); predictions that change under tiny
// random perturbations (±1e-4, far below one grey level) for more than 1 % of the examples.
// Where gradients vanish, the layer that zeroes them is named: the gradient reaching every
// tap is recorded on the way back (an identity with a custom gradient on each tap), and the
// layer is the first one, going backwards, whose output gets a non-zero gradient while what
// lies below it gets none — the channel mask sits at the end of its block.
import { tf } from '../../engine/tf';
import { cePerExample, oneHot, predict, uniformTensor } from '../../attacks/common';
import { pts, type Diagnosis } from '../diagnosis';
import type { Check } from '../types';

export const TINY_NOISE = 1e-4;
export const TINY_DRAWS = 10;
export const UNSTABLE_TOL = 0.01;

function quantiles(v: number[]): Record<string, number> {
  const s = [...v].sort((a, b) => a - b);
  const q = (p: number) => (s.length ? s[Math.min(s.length - 1, Math.floor(p * (s.length - 1)))] : NaN);
  return { min: q(0), p10: q(0.1), median: q(0.5), p90: q(0.9), max: q(1) };
}

export const gradientHealthCheck: Check = {
  id: 'gradient-health',
  title: 'Gradient health',
  whiteBox: false,
  async run(d: Diagnosis) {
    const model = d.input.model;
    const tapNames = model ? [...model.tapNames] : [];
    const all = new Array<boolean>(d.n).fill(true);
    const norms: number[] = [];
    let zero = 0;
    let nonFinite = 0;
    let randomised = false;
    let unstable = 0;
    // Per tap, examples whose input gradient is zero but whose tap output gets a gradient.
    const culprits: Record<string, number> = {};
    await d.onRows(all, async (x, y, labels, batch) => {
      const n = labels.length;
      const yOh = oneHot(y, d.numClasses);
      const tapGrads: Record<string, tf.Tensor> = {};
      try {
        const inputGrad = tf.tidy(() => {
          if (!model) return tf.grad((xi: tf.Tensor) => tf.sum(cePerExample(d.target.logits(xi as tf.Tensor4D), yOh)))(x);
          const tapHook = (name: string, t: tf.Tensor) =>
            tf.customGrad(((v: tf.Tensor) => ({
              value: tf.clone(v),
              gradFunc: (dy: tf.Tensor) => {
                tapGrads[name] = tf.keep(tf.sum(tf.abs(tf.reshape(dy, [n, -1])), 1));
                return dy;
              },
            })) as unknown as Parameters<typeof tf.customGrad>[0])(t);
          return tf.grad((xi: tf.Tensor) => tf.sum(cePerExample(model.forward(xi as tf.Tensor4D, { training: false, channelMask: model.channelMask, tapHook }).logits, yOh)))(x);
        });
        const [l1, l2] = tf.tidy(() => {
          const flat = tf.reshape(inputGrad, [n, -1]);
          return [tf.sum(tf.abs(flat), 1), tf.sqrt(tf.sum(tf.square(flat), 1))];
        });
        inputGrad.dispose();
        const [a1, a2] = await Promise.all([l1.data(), l2.data()]);
        tf.dispose([l1, l2]);
        const taps: Record<string, Float32Array> = {};
        for (const name of tapNames) if (tapGrads[name]) taps[name] = (await tapGrads[name].data()) as Float32Array;
        for (let i = 0; i < n; i++) {
          if (!Number.isFinite(a1[i])) nonFinite++;
          else norms.push(a2[i]);
          if (a1[i] !== 0) continue;
          zero++;
          // The input gets no gradient: the first tap (in network order) that does get one
          // names the layers below it, between it and the tap before, as where it vanishes.
          const k = tapNames.findIndex((name) => (taps[name]?.[i] ?? 0) !== 0);
          const culprit =
            k < 0
              ? 'the layers after the last tap'
              : k === 0
                ? `${tapNames[0]} (the layers up to ${tapNames[0]}, input processing included)`
                : `${tapNames[k]} (the layers between ${tapNames[k - 1]} and ${tapNames[k]})`;
          culprits[culprit] = (culprits[culprit] ?? 0) + 1;
        }
        // Randomised: the same input twice.
        const [o1, o2] = [tf.tidy(() => d.target.logits(x)), tf.tidy(() => d.target.logits(x))];
        const gap = tf.tidy(() => tf.max(tf.abs(tf.sub(o1, o2))));
        const diff = await gap.data();
        tf.dispose([o1, o2, gap]);
        if (diff[0] > 0) randomised = true;
        // Unstable: tiny uniform perturbations.
        const base = await predict(d.target, x);
        const changed = new Array<boolean>(n).fill(false);
        const rng = d.rng(`tiny-${batch}`);
        for (let k = 0; k < TINY_DRAWS; k++) {
          await d.yieldPoint();
          const xt = tf.tidy(() => tf.clipByValue(tf.add(x, uniformTensor(rng, x.shape, -TINY_NOISE, TINY_NOISE)), 0, 1) as tf.Tensor4D);
          const p = await predict(d.target, xt).finally(() => xt.dispose());
          p.forEach((v, i) => {
            if (v !== base[i]) changed[i] = true;
          });
        }
        unstable += changed.filter(Boolean).length;
      } finally {
        yOh.dispose();
        tf.dispose(Object.values(tapGrads));
      }
      return new Array<boolean>(labels.length).fill(true);
    });
    const warnings: string[] = [];
    if (zero > 0) warnings.push(`${zero} of ${d.n} examples have a zero input gradient` + (Object.keys(culprits).length ? `, zeroed at ${Object.entries(culprits).map(([k, c]) => `${k} (${c})`).join(', ')}` : ''));
    if (nonFinite > 0) warnings.push(`${nonFinite} examples have a non-finite input gradient`);
    if (randomised) warnings.push('two forwards of the same input differ: a randomised defence (evaluate it with EOT)');
    if (unstable / d.n > UNSTABLE_TOL) warnings.push(`${unstable} examples (${pts(unstable / d.n)}) change prediction under ±${TINY_NOISE} noise`);
    const q = quantiles(norms);
    return {
      status: warnings.length ? 'warn' : 'pass',
      summary: (warnings.length ? warnings.join('; ') + '; ' : '') + `‖∇ₓ CE‖₂ median ${q.median.toPrecision(3)} (10 % ${q.p10.toPrecision(3)}, 90 % ${q.p90.toPrecision(3)})`,
      numbers: { zero_gradient: zero, non_finite_gradient: nonFinite, zeroed_at: culprits, randomised, unstable_predictions: unstable, tiny_noise: TINY_NOISE, gradient_l2: q },
    };
  },
};
