// Check 8 (the paper's Table 6; Tramèr et al. 2020 on adaptive attacks): for a model trained
// with the IB terms, PGD-100 that ascends CE plus the model's own IB objective (`pgd-ad`) next
// to plain PGD-100. An adaptive attack doing clearly better (more than 1 point) shows that the
// training objective itself steers plain attacks away.
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import type { Check } from '../types';

export const ADAPTIVE_STEPS = 100;
export const ADAPTIVE_TOL = 0.01;

export const adaptiveCheck: Check = {
  id: 'adaptive',
  title: 'Adaptive attack on the IB objective (PGD_AD-100)',
  whiteBox: true,
  async run(d: Diagnosis) {
    if (!d.input.adaptiveLoss) return { status: 'skip', summary: 'the model was not trained with IB terms', numbers: {} };
    const eps = d.input.eps;
    const clean = await d.cleanCorrect();
    const plain = await d.robustUnder('pgd', { eps, steps: ADAPTIVE_STEPS }, 'pgd100', clean);
    const adaptive = await d.robustUnder('pgd-ad', { eps, steps: ADAPTIVE_STEPS }, 'pgd-ad100', clean);
    const gain = accuracy(plain) - accuracy(adaptive);
    return {
      status: gain > ADAPTIVE_TOL ? 'warn' : 'pass',
      summary: `PGD_AD-100 ${pts(accuracy(adaptive))}, PGD-100 ${pts(accuracy(plain))}` + (gain > ADAPTIVE_TOL ? ': the adaptive attack is stronger' : ''),
      numbers: { pgd100_acc: accuracy(plain), pgd_ad100_acc: accuracy(adaptive) },
      robust: plain.map((p, i) => p && adaptive[i]),
    };
  },
};
