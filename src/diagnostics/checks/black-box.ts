// Check 4 (AutoAttack's checks.py; Carlini et al. 2019, §5.3): a black-box attack that needs no
// gradients must not beat the white-box ones. As in AutoAttack, Square (5,000 queries, margin
// loss) runs on the examples the white-box checks left: what it fools there is exactly what
// gradients missed, and on a model the white-box attacks break it costs nothing. It may lower
// the white-box accuracy by at most 0.2 points — AutoAttack's threshold. Random noise in the
// ε-ball (100 draws per example, on every clean-correct example) must not do better than
// white-box at all.
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import type { Check, Findings } from '../types';

export const SQUARE_QUERIES = 5000;
export const SQUARE_TOL = 0.002;
export const NOISE_DRAWS = 100;

export const blackBoxCheck: Check = {
  id: 'black-box-vs-white-box',
  title: 'Black box (Square, random noise) vs. white box',
  whiteBox: false,
  async run(d: Diagnosis, found: Findings) {
    const eps = d.input.eps;
    const clean = await d.cleanCorrect();
    const white = found.whiteBoxAcc;
    const left = found.whiteBox ?? clean;
    const square = await d.robustUnder('square', { eps, queries: SQUARE_QUERIES, pInit: 0.8, loss: 'margin', rescaleSchedule: false }, 'square', left);
    const noise = await d.robustUnder('noise', { eps, draws: NOISE_DRAWS }, 'noise', clean);
    const accS = accuracy(square);
    const accN = accuracy(noise);
    const attacked = left.filter(Boolean).length;
    const fooled = attacked - square.filter(Boolean).length;
    const warnings: string[] = [];
    if (white !== null && accS < white - SQUARE_TOL) warnings.push(`Square fooled ${fooled} of the ${attacked} examples the white-box attacks left (${pts(white)} → ${pts(accS)})`);
    if (white !== null && accN < white) warnings.push(`random noise leaves ${pts(accN)}, below the best white-box attack's ${pts(white)}`);
    return {
      status: white === null ? 'skip' : warnings.length ? 'warn' : 'pass',
      summary: warnings.length
        ? warnings.join('; ')
        : `Square fooled ${fooled} of the ${attacked} examples the white-box attacks left; noise ${pts(accN)}, best white-box ${white === null ? 'n/a' : pts(white)}`,
      numbers: {
        // Accuracy after the white-box attacks and then Square on what they left (AutoAttack's order).
        white_box_then_square_acc: accS,
        square_attacked: attacked,
        fooled_only_by_square: fooled,
        square_queries: SQUARE_QUERIES,
        noise_acc: accN,
        noise_draws: NOISE_DRAWS,
        best_white_box_acc: white,
      },
      robust: square.map((s, i) => s && noise[i]),
    };
  },
};
