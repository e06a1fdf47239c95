// The candidates of a robust-layer probe (paper Table 3, docs/method.md §7): the base method without
// IB terms ("CE only"), the IB terms on each single tap, on all taps, and on the configured
// robust set. Each candidate is the probe's config with only `ib` (and name/runsDir/eval)
// changed, trained as an ordinary run.
import type { ExperimentConfig, ModelConfig } from '../../config/schema';
import { validateConfig } from '../../config/load';
import { UserError } from '../../errors';
import { resolveLayers, type TapInfo } from '../../ib';
import { SMALL_CNN_TAPS } from '../../models/small-cnn';
import { VGG16_TAPS } from '../../models/vgg16';
import { RESNET18_TAPS } from '../../models/resnet18';
import { wrnTapNames } from '../../models/wrn';
import { candidatesRoot, type Candidate } from '../../runs/probe-files';

export { candidatesRoot, type Candidate, type CandidateKind } from '../../runs/probe-files';

/** Tap names of an architecture, without building the model (the VIB head keeps the base taps). */
export function modelTaps(model: ModelConfig): TapInfo {
  const taps: Record<string, () => readonly string[]> = {
    'small-cnn': () => SMALL_CNN_TAPS,
    vgg16: () => VGG16_TAPS,
    resnet18: () => RESNET18_TAPS,
    wrn: () => wrnTapNames(model.depth),
  };
  const get = taps[model.arch];
  if (!get) throw new UserError(`probe-layers does not know the taps of model.arch '${model.arch}'`);
  return { arch: model.arch, tapNames: get() };
}

/** The configured robust set: an explicit `ib.layers` list, else the architecture's preset. */
export function configuredRobustSet(cfg: ExperimentConfig, taps: TapInfo): string[] {
  return Array.isArray(cfg.ib.layers) ? resolveLayers(cfg.ib.layers, taps) : resolveLayers('robust', taps);
}

export function probeCandidates(cfg: ExperimentConfig, only?: readonly string[]): Candidate[] {
  if (cfg.train.method === 'hbar') throw new UserError("probe-layers probes the IB-RAR terms; train.method 'hbar' has its own layer set (use ce, pgd-at, trades, mart or vib)", undefined, 'train.method');
  const taps = modelTaps(cfg.model);
  const layers = only && only.length ? resolveLayers(only, taps) : [...taps.tapNames];
  for (const reserved of ['ce', 'all', 'robust']) {
    if (layers.includes(reserved)) throw new UserError(`a tap named '${reserved}' clashes with the probe's own rows`);
  }
  const robust = configuredRobustSet(cfg, taps);
  const base = cfg.train.method === 'ce' ? 'CE only' : `${cfg.train.method} only (no IB)`;
  return [
    { id: 'ce', kind: 'ce', label: base, layers: [] },
    ...layers.map((l): Candidate => ({ id: l, kind: 'layer', label: l, layers: [l] })),
    { id: 'all', kind: 'all', label: 'All layers', layers: [...taps.tapNames] },
    { id: 'robust', kind: 'robust', label: `Robust layers (${robust.join(', ')})`, layers: robust },
  ];
}

export function candidateConfig(cfg: ExperimentConfig, c: Candidate, probeDir: string): ExperimentConfig {
  const ib =
    c.kind === 'ce' ? { ...cfg.ib, enabled: false, mask: { ...cfg.ib.mask, enabled: false } } : { ...cfg.ib, enabled: true, layers: c.layers };
  return validateConfig({ ...cfg, name: c.id, runsDir: candidatesRoot(probeDir), ib, eval: { ...cfg.eval, attacks: [] } });
}
