// Check 1 (Carlini et al. 2019, §4): an iterative attack must do at least as well as a single
// step. PGD-10 (the authors' step rule) keeping more accuracy than FGSM means PGD's gradient
// steps lead nowhere: a sign of masked or noisy gradients. The PGD run is traced, which also
// gives the "silent success" indicator of Pintor et al. 2022.
import { pgdStepSize } from '../../config/schema';
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import { tracedPgd } from '../pgd-trace';
import type { Check } from '../types';

/** Silent successes that change the reported accuracy by more than this are a warning. */
export const SILENT_SUCCESS_TOL = 0.005;

export const iterativeCheck: Check = {
  id: 'iterative-vs-single-step',
  title: 'Iterative beats single-step (PGD-10 ≤ FGSM)',
  whiteBox: true,
  async run(d: Diagnosis) {
    const eps = d.input.eps;
    const clean = await d.cleanCorrect();
    const fgsm = await d.robustUnder('fgsm', { eps }, 'fgsm', clean);
    let silent = 0;
    const pgd = await d.onRows(clean, async (x, y, labels, batch) => {
      const t = await tracedPgd(d.target, x, y, labels, { eps, alpha: pgdStepSize(eps, 10), steps: 10 }, d.rng(`pgd10-${batch}`), d.yieldPoint);
      t.finalCorrect.forEach((c, i) => {
        if (c && t.everFooled[i]) silent++;
      });
      return t.finalCorrect;
    });
    const accF = accuracy(fgsm);
    const accP = accuracy(pgd);
    const silentShare = silent / d.n;
    const robust = pgd.map((p, i) => p && fgsm[i]);
    const warnings: string[] = [];
    if (accP > accF) warnings.push(`PGD-10 keeps ${pts(accP)}, more than FGSM's ${pts(accF)}`);
    if (silentShare > SILENT_SUCCESS_TOL) warnings.push(`${silent} examples (${pts(silentShare)}) were misclassified at some PGD iterate but PGD returned a correctly classified point (silent success)`);
    return {
      status: warnings.length ? 'warn' : 'pass',
      summary: warnings.length ? warnings.join('; ') : `PGD-10 ${pts(accP)} ≤ FGSM ${pts(accF)}; ${silent} silent successes`,
      numbers: { fgsm_acc: accF, pgd10_acc: accP, silent_successes: silent, silent_success_share: silentShare },
      robust,
    };
  },
};
