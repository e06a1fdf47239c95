// Check 2 (Carlini et al. 2019, §5.2; Pintor et al. 2022's "incomplete optimisation"): a
// converged attack does not get stronger with more steps or restarts. PGD with a fixed step
// α = ε/4 runs for 10, 20, 40, 80, 160 and 200 steps; the 200-step run is traced, and then
// 10 restarts run at 200 steps. Warnings: the last doubling (80 → 160) or the step to 200
// lowers accuracy by more than 1 point; 10 restarts lower it by more than 1 point; the loss of
// the examples still correctly classified still changes by more than 5 % over the last 10 steps.
import { accuracy, pts, type Diagnosis } from '../diagnosis';
import { tracedPgd } from '../pgd-trace';
import type { Check } from '../types';

export const CONVERGENCE_STEPS = [10, 20, 40, 80, 160, 200];
export const CONVERGENCE_TOL = 0.01;
export const RESTARTS = 10;
export const LOSS_CHANGE_TOL = 0.05;

export const convergenceCheck: Check = {
  id: 'convergence',
  title: 'Convergence in steps and restarts',
  whiteBox: true,
  async run(d: Diagnosis) {
    const eps = d.input.eps;
    const alpha = eps / 4;
    const clean = await d.cleanCorrect();
    const curve: Array<{ steps: number; acc: number }> = [];
    let worst = clean;
    let lossChange: number | null = null;
    for (const steps of CONVERGENCE_STEPS) {
      let flags: boolean[];
      if (steps === CONVERGENCE_STEPS[CONVERGENCE_STEPS.length - 1]) {
        // Traced: the loss of the examples that survive, over the last 10 steps.
        let before = 0;
        let after = 0;
        flags = await d.onRows(clean, async (x, y, labels, batch) => {
          const t = await tracedPgd(d.target, x, y, labels, { eps, alpha, steps }, d.rng(`conv-${steps}-${batch}`), d.yieldPoint);
          t.finalCorrect.forEach((c, i) => {
            if (!c) return;
            before += t.loss[steps - 10][i];
            after += t.loss[steps][i];
          });
          return t.finalCorrect;
        });
        lossChange = before !== 0 ? Math.abs(after - before) / Math.abs(before) : null;
      } else {
        flags = await d.robustUnder('pgd', { eps, alpha, steps }, `conv-${steps}`, clean);
      }
      curve.push({ steps, acc: accuracy(flags) });
      worst = worst.map((w, i) => w && flags[i]);
    }
    const restarts = await d.robustUnder('pgd', { eps, alpha, steps: 200, restarts: RESTARTS }, 'restarts', clean);
    worst = worst.map((w, i) => w && restarts[i]);
    const at = (s: number) => curve.find((c) => c.steps === s)!.acc;
    const lastDoubling = at(80) - at(160);
    const lastStep = at(160) - at(200);
    const restartGain = at(200) - accuracy(restarts);
    const warnings: string[] = [];
    if (lastDoubling > CONVERGENCE_TOL) warnings.push(`80 → 160 steps lowered accuracy by ${pts(lastDoubling)}`);
    if (lastStep > CONVERGENCE_TOL) warnings.push(`160 → 200 steps lowered accuracy by ${pts(lastStep)}`);
    if (restartGain > CONVERGENCE_TOL) warnings.push(`${RESTARTS} restarts lowered accuracy by ${pts(restartGain)}`);
    if (lossChange !== null && lossChange > LOSS_CHANGE_TOL) warnings.push(`the surviving examples' loss still changed by ${(100 * lossChange).toFixed(1)} % over the last 10 of 200 steps`);
    const converged = accuracy(worst);
    return {
      status: warnings.length ? 'warn' : 'pass',
      summary: (warnings.length ? warnings.join('; ') + '; ' : '') + `accuracy ${curve.map((c) => `${c.steps}: ${pts(c.acc)}`).join(', ')}, ${RESTARTS} restarts: ${pts(accuracy(restarts))}; converged ${pts(converged)}`,
      numbers: { alpha, curve, restarts: RESTARTS, restarts_acc: accuracy(restarts), last_doubling_drop: lastDoubling, last_step_drop: lastStep, restart_drop: restartGain, loss_change_last10: lossChange, converged_acc: converged },
      robust: worst,
    };
  },
};
