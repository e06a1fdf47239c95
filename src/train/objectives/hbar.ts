// HBaR (Wang et al., NeurIPS 2021; docs/method.md §6): the base method's loss plus
//   λ_x Σ_l HSIC(X, T_l) − λ_y Σ_l HSIC(Y, T_l)
// with the same normalised-CCA HSIC as IB-RAR (σ = 5, Y linear, X clean), on every hidden tap
// (no layer selection, no mask). As in HBaR's `hsic_train`, the taps are those of the CLEAN
// forward pass even under adversarial training (`_, hiddens = model(data)` after the
// adversarial forward): TRADES/MART already make that pass; for PGD-AT an extra train-mode
// forward on the clean batch is made, as HBaR's code does. This is the difference from IB-RAR,
// whose PGD-AT terms use the adversarial taps (docs/method.md §1.3).
import { tf } from '../../engine/tf';
import type { ExperimentConfig, HbarConfig, IbConfig } from '../../config/schema';
import type { Model } from '../../models/types';
import { makeIbTerms } from '../../ib/hooks';
import { ceObjective } from './ce';
import { martObjective } from './mart';
import { pgdAtObjective } from './pgd-at';
import { tradesObjective } from './trades';
import type { IbTermsFn, Objective } from './types';

const BASES: Record<HbarConfig['base'], Objective> = {
  ce: ceObjective,
  'pgd-at': pgdAtObjective,
  trades: tradesObjective,
  mart: martObjective,
};

/** The run's HBaR settings; the schema fills them in (λs included) when train.method is hbar. */
export function hbarSettings(cfg: ExperimentConfig): Required<HbarConfig> {
  const h = cfg.train.hbar;
  if (!h || h.lambdaX === undefined || h.lambdaY === undefined) throw new Error('train.hbar is resolved by the config schema when train.method is hbar');
  return h as Required<HbarConfig>;
}

/** The HSIC terms as an IB config (the estimator and the regularizer are shared with IB-RAR). */
export function hbarAsIb(cfg: ExperimentConfig): IbConfig {
  const h = hbarSettings(cfg);
  return { ...cfg.ib, enabled: true, layers: h.layers, alpha: h.lambdaX, beta: h.lambdaY, sigma: h.sigma, yKernel: h.yKernel, input: 'clean' };
}

// The terms function depends only on the model's taps and the config; build it once per model.
const termsCache = new WeakMap<Model, { cfg: ExperimentConfig; fn: IbTermsFn }>();
function hbarTerms(cfg: ExperimentConfig, model: Model): IbTermsFn {
  const hit = termsCache.get(model);
  if (hit && hit.cfg === cfg) return hit.fn;
  const fn = makeIbTerms(hbarAsIb(cfg), model);
  termsCache.set(model, { cfg, fn });
  return fn;
}

/** Clean taps only: the adversarial pass of TRADES/MART (prefix `adv/`) contributes nothing. */
function cleanOnly(terms: IbTermsFn): IbTermsFn {
  return (taps, xForIb, yOneHot, prefix) => (prefix === '' ? terms(taps, xForIb, yOneHot, prefix) : { loss: tf.scalar(0), logs: {} });
}

export const hbarObjective: Objective = {
  name: 'hbar',
  async prepare(ctx) {
    return BASES[hbarSettings(ctx.cfg).base].prepare(ctx);
  },
  loss(ctx, prepared) {
    const base = hbarSettings(ctx.cfg).base;
    const terms = hbarTerms(ctx.cfg, ctx.model);
    if (base !== 'pgd-at') return BASES[base].loss({ ...ctx, ib: cleanOnly(terms) }, prepared);
    const out = pgdAtObjective.loss({ ...ctx, ib: null }, prepared);
    const { taps } = ctx.model.forward(ctx.x, { training: true, channelMask: ctx.channelMask });
    const ib = terms(taps, ctx.x, ctx.yOneHot, '');
    return { total: tf.add(out.total, ib.loss), logs: { ...out.logs, ib: ib.loss, ...ib.logs }, logitsForAccuracy: out.logitsForAccuracy };
  },
};
