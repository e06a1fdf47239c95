// Architecture name → builder. The config's `model` section chooses one.
import type { Rng } from '../engine/rng';
import { UserError } from '../errors';
import type { ModelConfig } from '../config/schema';
import type { Model, ModelBuilder, ModelOptions } from './types';
import { buildSmallCnn } from './small-cnn';
import { buildVgg16 } from './vgg16';
import { buildResnet18 } from './resnet18';
import { buildWrn } from './wrn';
import { VIB_DEFAULTS, wrapVib } from './vib';

const BUILDERS: Record<string, ModelBuilder> = {
  'small-cnn': buildSmallCnn,
  vgg16: buildVgg16,
  resnet18: buildResnet18,
  wrn: buildWrn,
};

export function listArchs(): string[] {
  return Object.keys(BUILDERS);
}

/** Options for a builder from the config's model section and the data's shape. */
export function modelOptions(cfg: ModelConfig, numClasses: number, inputShape: readonly [number, number, number]): ModelOptions {
  return {
    numClasses,
    inputShape,
    width: cfg.width,
    depth: cfg.depth,
    widen: cfg.widen,
    dropout: cfg.dropout,
    normalize: cfg.normalize,
  };
}

/** A freshly initialised model (PyTorch default init from `rng`; `rng` is not advanced). */
export function buildModel(cfg: ModelConfig, numClasses: number, inputShape: readonly [number, number, number], rng: Rng): Model {
  const builder = Object.prototype.hasOwnProperty.call(BUILDERS, cfg.arch) ? BUILDERS[cfg.arch] : undefined;
  if (!builder) {
    throw new UserError(`unknown model.arch '${String(cfg.arch)}'; expected one of: ${listArchs().join(', ')}`);
  }
  const model = builder(modelOptions(cfg, numClasses, inputShape), rng);
  return cfg.head === 'vib' ? wrapVib(model, { ...VIB_DEFAULTS, ...cfg.vib }, rng) : model;
}
