// Check 2 (Carlini et al. 2019, §5.2; Pintor et al. 2022's "incomplete optimisation"): a
// converged attack does not get stronger with more steps or restarts. PGD with a fixed step
// α = ε/4 for 10, 20, 40, 80, 160 and 200 steps (read off one traced 200-step run), then 10
// restarts at 200 steps (that run and 9 more on the examples it left). Warnings: the last doubling (80 → 160) or the step to 200
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
    // One traced run of the longest length gives the whole curve: with a fixed step size, PGD
    // for k steps is the same run stopped after step k (same random start), so the curve costs
    // 200 steps per example instead of 10 + 20 + … + 200 = 510.
    const last = CONVERGENCE_STEPS[CONVERGENCE_STEPS.length - 1];
    const atSteps = new Map<number, boolean[]>(CONVERGENCE_STEPS.map((k) => [k, []]));
    let before = 0;
    let after = 0;
    const traced = await d.onRows(clean, async (x, y, labels, batch) => {
      const t = await tracedPgd(d.target, x, y, labels, { eps, alpha, steps: last }, d.rng(`conv-${last}-${batch}`), d.yieldPoint);
      for (const k of CONVERGENCE_STEPS) atSteps.get(k)!.push(...t.correct[k]);
      // The loss of the examples that survive, over the last 10 steps.
      t.finalCorrect.forEach((c, i) => {
        if (!c) return;
        before += t.loss[last - 10][i];
        after += t.loss[last][i];
      });
      return t.finalCorrect;
    });
    const lossChange = before !== 0 ? Math.abs(after - before) / Math.abs(before) : null;
    // Back on the rows of the whole n (examples not correct to begin with count as not robust).
    const onAll = (robustRows: boolean[]) => {
      let j = 0;
      return clean.map((c) => (c ? robustRows[j++] : false));
    };
    const flagsAt = CONVERGENCE_STEPS.map((steps) => ({ steps, flags: onAll(atSteps.get(steps)!) }));
    const curve = flagsAt.map(({ steps, flags }) => ({ steps, acc: accuracy(flags) }));
    let worst = clean;
    for (const { flags } of flagsAt) worst = worst.map((w, i) => w && flags[i]);
    // The traced run is the first of the 10 restarts: the other 9 attack only what it left.
    const restarts = await d.robustUnder('pgd', { eps, alpha, steps: last, restarts: RESTARTS - 1 }, 'restarts', traced);
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
