// Check 3 (Carlini et al. 2019, §5.4): accuracy under PGD must fall monotonically as ε grows,
// reach (at most) 1 % by ε = 64/255 — chance level when the model is no better than a random
// guess — and an unbounded attack (ε = 1: any image in [0,1] allowed) must reach 0 %. Every ε is
// attacked independently from the clean inputs (re-using smaller-ε points would make the curve
// monotone by construction). PGD with 20 steps of ε/4; the unbounded one with 50.
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import type { Check } from '../types';

export const SWEEP_EPS = [1 / 255, 2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255];
export const LARGE_EPS_MAX_ACC = 0.01;
/** Accuracy may rise by this much between neighbouring ε (sampling noise of a random start) before it counts as non-monotone. */
export const MONOTONE_TOL = 0.005;

export const epsSweepCheck: Check = {
  id: 'eps-sweep',
  title: 'ε sweep to 64/255 and an unbounded attack',
  whiteBox: true,
  async run(d: Diagnosis) {
    const clean = await d.cleanCorrect();
    const cleanAcc = accuracy(clean);
    const list = [...new Set([...SWEEP_EPS, d.input.eps])].sort((a, b) => a - b);
    const curve: Array<{ eps: number; acc: number }> = [];
    let atEval: boolean[] | undefined;
    for (const eps of list) {
      const flags = await d.robustUnder('pgd', { eps, alpha: eps / 4, steps: 20 }, `sweep-${eps}`, clean);
      curve.push({ eps, acc: accuracy(flags) });
      if (eps === d.input.eps) atEval = flags;
    }
    const unbounded = accuracy(await d.robustUnder('pgd', { eps: 1, alpha: 0.25, steps: 50 }, 'unbounded', clean));
    const chance = 1 / d.numClasses;
    // A model that only guesses cannot be pushed below guessing by any attack on average.
    const threshold = cleanAcc <= 1.5 * chance ? Math.max(LARGE_EPS_MAX_ACC, chance) : LARGE_EPS_MAX_ACC;
    const rises = curve.slice(1).filter((c, i) => c.acc > curve[i].acc + MONOTONE_TOL).map((c) => c.eps);
    const large = curve.find((c) => Math.abs(c.eps - 64 / 255) < 1e-12)!.acc;
    const warnings: string[] = [];
    if (rises.length) warnings.push(`accuracy rises with ε at ${rises.map((e) => `${(e * 255).toFixed(1)}/255`).join(', ')}`);
    if (large > threshold) warnings.push(`${pts(large)} remain at ε = 64/255 (expected ≤ ${pts(threshold)})`);
    if (unbounded > 0) warnings.push(`an unbounded attack leaves ${pts(unbounded)} (expected 0 %)`);
    return {
      status: warnings.length ? 'warn' : 'pass',
      summary: (warnings.length ? warnings.join('; ') + '; ' : '') + `accuracy ${curve.map((c) => `${(c.eps * 255).toFixed(1)}/255: ${pts(c.acc)}`).join(', ')}; unbounded ${pts(unbounded)}`,
      numbers: { curve, unbounded_acc: unbounded, large_eps_threshold: threshold, clean_acc: cleanAcc },
      robust: atEval,
    };
  },
};
