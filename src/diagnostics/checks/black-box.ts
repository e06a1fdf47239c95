// Check 4 (AutoAttack's checks.py; Carlini et al. 2019, §5.3): a black-box attack that needs no
// gradients must not beat the white-box ones. Square (5,000 queries, margin loss) may undercut
// the best white-box accuracy by at most 0.2 points — AutoAttack's threshold — and random noise
// in the ε-ball (100 draws per example) must not do better than white-box at all.
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
    const square = await d.robustUnder('square', { eps, queries: SQUARE_QUERIES, pInit: 0.8, loss: 'margin', rescaleSchedule: false }, 'square', clean);
    const noise = await d.robustUnder('noise', { eps, draws: NOISE_DRAWS }, 'noise', clean);
    const accS = accuracy(square);
    const accN = accuracy(noise);
    const white = found.whiteBoxAcc;
    const warnings: string[] = [];
    if (white !== null && accS < white - SQUARE_TOL) warnings.push(`Square leaves ${pts(accS)}, below the best white-box attack's ${pts(white)}`);
    if (white !== null && accN < white) warnings.push(`random noise leaves ${pts(accN)}, below the best white-box attack's ${pts(white)}`);
    // Examples white-box attacks could not fool but Square could: where gradients mislead.
    const missed = found.whiteBox ? square.filter((s, i) => !s && found.whiteBox![i]).length : null;
    return {
      status: white === null ? 'skip' : warnings.length ? 'warn' : 'pass',
      summary:
        (warnings.length ? warnings.join('; ') + '; ' : '') +
        `Square ${pts(accS)}, noise ${pts(accN)}, best white-box ${white === null ? 'n/a' : pts(white)}` +
        (missed ? `; Square fooled ${missed} examples no white-box attack fooled` : ''),
      numbers: { square_acc: accS, square_queries: SQUARE_QUERIES, noise_acc: accN, noise_draws: NOISE_DRAWS, best_white_box_acc: white, fooled_only_by_square: missed },
      robust: square.map((s, i) => s && noise[i]),
    };
  },
};
