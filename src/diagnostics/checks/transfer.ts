// Check 6 (Carlini et al. 2019, §5.3; Athalye et al. 2018): adversarial examples crafted with
// PGD on an independently trained model of the same architecture (the run's recipe without the
// defence), then shown to the defended model. If they fool it more often than attacks on the
// defended model itself, its own gradients are not showing the way. PGD with 50 steps of ε/4;
// transfer may undercut the best white-box accuracy by at most 0.2 points.
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import type { Check, Findings } from '../types';

export const TRANSFER_TOL = 0.002;

export const transferCheck: Check = {
  id: 'transfer',
  title: 'Transfer from an independently trained surrogate',
  whiteBox: false,
  async run(d: Diagnosis, found: Findings) {
    const surrogate = d.input.surrogate;
    if (!surrogate) return { status: 'skip', summary: 'no surrogate model (give --surrogate RUN_DIR, or let eval train one)', numbers: {} };
    const eps = d.input.eps;
    const flags = await d.robustUnder('pgd', { eps, alpha: eps / 4, steps: 50 }, 'transfer', await d.cleanCorrect(), surrogate);
    const acc = accuracy(flags);
    const white = found.whiteBoxAcc;
    const beats = white !== null && acc < white - TRANSFER_TOL;
    return {
      status: white === null ? 'skip' : beats ? 'warn' : 'pass',
      summary: `transferred PGD-50 leaves ${pts(acc)}` + (white !== null ? `; the best white-box attack ${pts(white)}` : '') + (beats ? ': transfer beats white-box' : ''),
      numbers: { transfer_acc: acc, best_white_box_acc: white },
      robust: flags,
    };
  },
};
