// ibrar's library API: everything the CLI does, callable from code (and tests).
export { tf } from './engine/tf';
export { initBackend, backendInfo, BACKENDS, type BackendInfo, type BackendName } from './engine/backend';
export { backendReadsSync } from './engine/reads';
export { Rng, type RngState } from './engine/rng';
export { UserError } from './errors';

export { experimentSchema, type ExperimentConfig, type ExperimentInput } from './config/schema';
export { loadConfig, validateConfig, applyOverrides, configToYaml } from './config/load';

export { loadDataset, trainBatches, testBatches, toTensors, fetchDataset, verifyDataset, listDatasets } from './data';
export type { Dataset, Split, Batch } from './data';

export { buildModel, listArchs } from './models/registry';
export type { Model, ForwardOptions, ForwardResult, NamedParam } from './models/types';

export { hsicCca, hsicCcaValue, hsicPlain, hsicNormalized, ibRegularizer, resolveLayers, computeChannelMask, makeChannelMaskHook } from './ib';

export { TrainStepper, NonFiniteLossError, type StepOutcome, type TrainStepperOptions } from './train/step';
export type { IbMode } from './train/deferred-ib';
export { train, evaluateClean, type TrainRequest, type TrainResult, type TrainProgress } from './jobs/train';
export { openRun, type OpenedRun, type OpenRunRequest } from './jobs/open-run';
export { crossEntropy, tradesCodeLoss, tradesOriginalLoss, martLoss } from './train/objectives/losses';
export { getObjective, listObjectives } from './train/objectives/registry';
export { saveCheckpoint, loadCheckpoint, type CheckpointSidecar } from './runs/checkpoint';

export { getAttack, listAttacks, attackNames, parseAttackList } from './attacks/registry';
export { targetFromModel } from './attacks/target';
export type { Attack, AttackContext, AttackResult, AttackTarget } from './attacks/types';
export { evaluate, evaluateRun, evalRequestFromConfig, type EvalRequest, type EvalOutcome } from './jobs/eval';
export type { EvalReport } from './runs/eval-report';
