// BIM / I-FGSM (docs/method.md §5; torchattacks BIM): PGD-L∞ from x itself (no random start)
// with step α = 1/255. torchattacks' max/min form of the projection equals ours. `eot` > 1:
// each gradient is the mean over that many stochastic forwards (./eot.ts).
import { z } from 'zod';
import { oneHot } from './common';
import { Eot, eotParam, withEotExtra } from './eot';
import { defineAttack, epsParam, posInt, stepParam } from './params';
import { pgdLinf } from './pgd';

const schema = z
  .object({
    eps: epsParam(0.03),
    alpha: stepParam().default(1 / 255),
    steps: posInt(10),
    eot: eotParam(),
  })
  .strict();
export type BimParams = z.output<typeof schema>;

export const bim = defineAttack<BimParams>({
  name: 'bim',
  description: 'Basic iterative method (I-FGSM), L∞, α = 1/255, no random start (Kurakin et al. 2017)',
  norm: 'linf',
  schema,
  attack: async (ctx, x, y, p) => {
    const yOh = oneHot(y, ctx.target.numClasses);
    const eot = Eot.of(ctx, p.eot);
    try {
      return withEotExtra({ xAdv: await pgdLinf(ctx, x, yOh, { eps: p.eps, alpha: p.alpha, steps: p.steps, eot }) }, eot);
    } finally {
      yOh.dispose();
    }
  },
});
