// The training loop: a readable story built from factories. One run dir per run; every
// epoch appends a metrics row and writes the `last` checkpoint (and `best` by test
// accuracy); `train.checkpointEvery` adds mid-epoch recovery points; resume is exact.
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { initBackend, type BackendInfo } from '../engine/backend';
import type { ExperimentConfig } from '../config/schema';
import { configToYaml, loadConfig } from '../config/load';
import { UserError } from '../errors';
import { loadDataset, trainBatches, testBatches, toTensors, type Batch, type Dataset, type Split } from '../data';
import { buildModel } from '../models/registry';
import type { Model } from '../models/types';
import { correctCount } from './objectives/losses';
import { type Sgd, learningRateAt } from './optimizer';
import { constantMaskHook } from './ib-hooks';
import { TrainStepper, NonFiniteLossError } from './step';

export { NonFiniteLossError };
import { emptyAccumulator, EPOCH_COLUMNS, type EpochAccumulator, type EpochRecord } from './records';
import { saveCheckpoint, loadCheckpoint, type CheckpointSidecar } from './checkpoint';

/** What the trainer keeps in the checkpoint sidecar's `state` to resume exactly. */
interface ResumeState {
  optimizerStarted: boolean;
  bestTestAcc: number;
  /** Partial sums of the epoch in progress (mid-epoch checkpoints only). */
  accumulator: EpochAccumulator | null;
}

function resumeState(sidecar: CheckpointSidecar | null): ResumeState {
  const st = (sidecar?.state ?? {}) as Partial<ResumeState>;
  return { optimizerStarted: Boolean(st.optimizerStarted), bestTestAcc: st.bestTestAcc ?? -1, accumulator: st.accumulator ?? null };
}
import { createRunDir, runLayout, type RunLayout } from '../runs/runDir';
import { acquireRunLock, type RunLock } from '../runs/lock';
import { MetricsWriter } from '../runs/metrics';
import { configHash } from '../runs/configHash';
import { createRunLogger, type RunLogger } from '../runs/logger';

export interface TrainProgress {
  onStart?(info: { runDir: string; backend: BackendInfo; stepsPerEpoch: number; epochs: number; startEpoch: number }): void;
  onEpochStart?(epoch: number, stepsPerEpoch: number, startStep: number): void;
  onStep?(info: { epoch: number; step: number; loss: number; acc: number; imagesPerSec: number }): void;
  onEpochEnd?(record: EpochRecord): void;
  onInterrupted?(info: { runDir: string; epoch: number; step: number }): void;
  /** Notes for the user (e.g. a dataset being fetched). */
  onNote?(message: string): void;
}

export interface TrainOptions {
  cfg?: ExperimentConfig;
  /** Continue the run in this directory from its `last` checkpoint. */
  resumeDir?: string;
  progress?: TrainProgress;
  /** Polled after every step; true makes the loop checkpoint and return. */
  shouldStop?: () => boolean;
}

export interface TrainResult {
  runDir: string;
  records: EpochRecord[];
  interrupted: boolean;
  bestTestAcc: number;
  lastMask: number[] | null;
}

interface Session {
  cfg: ExperimentConfig;
  layout: RunLayout;
  dataset: Dataset;
  model: Model;
  stepper: TrainStepper;
  optimizer: Sgd;
  metrics: MetricsWriter;
  log: RunLogger;
  lock: RunLock;
  hash: string;
  lastMask: Float32Array | null;
  bestTestAcc: number;
  globalStep: number;
}

export function stepsPerEpoch(split: Split, batchSize: number): number {
  return Math.ceil(split.n / batchSize);
}

/** Clean accuracy in eval mode, streamed in batches (with the stored mask when `applyAtEval`). */
export function evaluateClean(model: Model, split: Split, batchSize: number, mask: Float32Array | null): number {
  let correct = 0;
  const hook = mask ? constantMaskHook(mask) : undefined;
  for (const batch of testBatches(split, batchSize)) {
    correct += tf.tidy(() => {
      const { x, y } = toTensors(batch, 0);
      const { logits } = model.forward(x, { training: false, channelMask: hook });
      return correctCount(logits, y).dataSync()[0];
    });
  }
  return split.n === 0 ? 0 : correct / split.n;
}

async function openSession(opts: TrainOptions): Promise<{ session: Session; sidecar: CheckpointSidecar | null; backend: BackendInfo }> {
  let cfg: ExperimentConfig;
  let runDir: string | null = null;
  if (opts.resumeDir) {
    const layout = runLayout(opts.resumeDir);
    if (!fs.existsSync(layout.config)) throw new UserError('not a run directory (config.yaml missing)', opts.resumeDir);
    cfg = loadConfig(layout.config);
    runDir = opts.resumeDir;
  } else if (opts.cfg) {
    cfg = opts.cfg;
  } else {
    throw new UserError('train needs a config or a run directory to resume');
  }

  const backend = await initBackend(cfg.backend);
  // Everything that can fail on bad input happens before the run dir is made.
  const dataset = await loadDataset(cfg.data, cfg.seed, { log: (msg) => opts.progress?.onNote?.(msg) });
  const model = buildModel(cfg.model, dataset.numClasses, dataset.shape, new Rng(cfg.seed).fork('init'));
  const stepper = new TrainStepper(cfg, model, dataset.numClasses);

  if (!runDir) runDir = createRunDir(cfg.runsDir, cfg.name);
  const layout = runLayout(runDir);
  const lock = acquireRunLock(layout);
  const hash = configHash(cfg);
  const log = createRunLogger(layout);
  const optimizer = stepper.optimizer;

  let sidecar: CheckpointSidecar | null = null;
  if (opts.resumeDir) {
    const loaded = loadCheckpoint(layout.checkpoints, 'last', model);
    sidecar = loaded.sidecar;
    if (sidecar.configHash !== hash) log.warn({ saved: sidecar.configHash, now: hash }, 'config hash differs from the checkpoint');
    optimizer.importState(loaded.optimizerState, resumeState(sidecar).optimizerStarted);
  } else {
    fs.writeFileSync(layout.config, configToYaml(cfg));
  }
  const completed = sidecar ? sidecar.epoch : 0;
  const metrics = MetricsWriter.open(layout, { columns: [...EPOCH_COLUMNS], truncateAfterEpoch: completed });

  const session: Session = {
    cfg,
    layout,
    dataset,
    model,
    stepper,
    optimizer,
    metrics,
    log,
    lock,
    hash,
    lastMask: sidecar?.mask ? Float32Array.from(sidecar.mask) : null,
    bestTestAcc: resumeState(sidecar).bestTestAcc,
    globalStep: sidecar?.globalStep ?? 0,
  };
  log.info({ backend, config: cfg, resume: Boolean(opts.resumeDir), configHash: hash }, 'session opened');
  return { session, sidecar, backend };
}

function checkpoint(s: Session, tag: string, epoch: number, stepInEpoch: number, acc: EpochAccumulator | null, metricsRecord: Record<string, number>): void {
  const state: ResumeState = { optimizerStarted: s.optimizer.hasStarted, bestTestAcc: s.bestTestAcc, accumulator: acc };
  saveCheckpoint(s.layout.checkpoints, tag, {
    params: s.model.params,
    optimizerState: s.optimizer.exportState(),
    sidecar: {
      arch: s.cfg.model.arch,
      epoch,
      step: stepInEpoch,
      globalStep: s.globalStep,
      // Randomness is derived statelessly from (seed, epoch, step), so no stream needs saving.
      rngState: {},
      configHash: s.hash,
      metrics: metricsRecord,
      mask: s.lastMask ? Array.from(s.lastMask) : undefined,
      state: state as unknown as Record<string, unknown>,
    },
  });
}

async function trainStep(s: Session, batch: Batch, epoch: number, step: number, acc: EpochAccumulator): Promise<void> {
  const out = await s.stepper.step(batch, epoch, step);
  if (out.skipped) {
    acc.nanSkipped++;
    s.log.warn({ epoch: epoch + 1, step: step + 1, loss: out.loss }, 'non-finite loss or gradient: batch skipped');
    return;
  }
  if (out.mask) s.lastMask = out.mask;
  acc.steps++;
  acc.seen += out.n;
  acc.correct += out.correct;
  acc.lossSum += out.loss;
  for (const [k, v] of Object.entries(out.logs)) acc.logSums[k] = (acc.logSums[k] ?? 0) + v;
  s.globalStep++;
}

function finishEpoch(s: Session, epoch: number, acc: EpochAccumulator, lr: number): EpochRecord {
  const testAcc = evaluateClean(s.model, s.dataset.test, s.cfg.train.evalBatchSize, s.cfg.ib.mask.applyAtEval ? s.lastMask : null);
  const steps = Math.max(acc.steps, 1);
  const record: EpochRecord = {
    epoch,
    lr,
    train_loss: acc.lossSum / steps,
    train_acc: acc.seen ? acc.correct / acc.seen : 0,
    test_acc: testAcc,
    seconds: acc.seconds,
    images_per_sec: acc.seconds > 0 ? acc.seen / acc.seconds : 0,
    nan_skipped: acc.nanSkipped,
  };
  for (const [k, v] of Object.entries(acc.logSums)) record[k] = v / steps;
  return record;
}

export async function train(opts: TrainOptions): Promise<TrainResult> {
  const { session: s, sidecar, backend } = await openSession(opts);
  const { cfg } = s;
  const records: EpochRecord[] = [];
  const perEpoch = stepsPerEpoch(s.dataset.train, cfg.train.batchSize);
  // A checkpoint mid-epoch stores its epoch (0-based, in progress) and the next step.
  let epoch = sidecar ? sidecar.epoch : 0;
  let startStep = sidecar && sidecar.step > 0 ? sidecar.step : 0;
  const saved = resumeState(sidecar);
  let acc: EpochAccumulator = sidecar && sidecar.step > 0 && saved.accumulator ? saved.accumulator : emptyAccumulator();
  opts.progress?.onStart?.({ runDir: s.layout.dir, backend, stepsPerEpoch: perEpoch, epochs: cfg.train.epochs, startEpoch: epoch });
  let interrupted = false;
  try {
    for (; epoch < cfg.train.epochs; epoch++) {
      const lr = learningRateAt(epoch, cfg.train.lr, cfg.train.schedule);
      s.optimizer.lr = lr;
      opts.progress?.onEpochStart?.(epoch + 1, perEpoch, startStep);
      const batches = trainBatches(s.dataset.train, {
        batchSize: cfg.train.batchSize,
        seed: cfg.seed,
        epoch,
        shuffle: true,
        augment: cfg.data.augment,
        startStep,
      });
      for (const batch of batches) {
        const t0 = process.hrtime.bigint();
        await trainStep(s, batch, epoch, batch.step, acc);
        acc.seconds += Number(process.hrtime.bigint() - t0) / 1e9;
        opts.progress?.onStep?.({
          epoch: epoch + 1,
          step: batch.step + 1,
          loss: acc.lossSum / Math.max(acc.steps, 1),
          acc: acc.seen ? acc.correct / acc.seen : 0,
          imagesPerSec: acc.seconds > 0 ? acc.seen / acc.seconds : 0,
        });
        const nextStep = batch.step + 1;
        const every = cfg.train.checkpointEvery;
        const stop = opts.shouldStop?.() ?? false;
        if (nextStep < perEpoch && (stop || (every && s.globalStep % every === 0))) {
          checkpoint(s, 'last', epoch, nextStep, acc, {});
          s.log.info({ epoch: epoch + 1, step: nextStep, globalStep: s.globalStep }, 'mid-epoch checkpoint');
        }
        if (stop && nextStep < perEpoch) {
          interrupted = true;
          opts.progress?.onInterrupted?.({ runDir: s.layout.dir, epoch: epoch + 1, step: nextStep });
          return { runDir: s.layout.dir, records, interrupted, bestTestAcc: s.bestTestAcc, lastMask: s.lastMask ? Array.from(s.lastMask) : null };
        }
      }
      const record = finishEpoch(s, epoch + 1, acc, lr);
      records.push(record);
      s.metrics.append(record);
      const improved = record.test_acc > s.bestTestAcc;
      if (improved) s.bestTestAcc = record.test_acc;
      checkpoint(s, 'last', epoch + 1, 0, null, record);
      if (improved) checkpoint(s, 'best', epoch + 1, 0, null, record);
      s.log.info({ ...record }, 'epoch');
      opts.progress?.onEpochEnd?.(record);
      acc = emptyAccumulator();
      startStep = 0;
      if (opts.shouldStop?.() && epoch + 1 < cfg.train.epochs) {
        interrupted = true;
        opts.progress?.onInterrupted?.({ runDir: s.layout.dir, epoch: epoch + 2, step: 0 });
        epoch++;
        break;
      }
    }
    return { runDir: s.layout.dir, records, interrupted, bestTestAcc: s.bestTestAcc, lastMask: s.lastMask ? Array.from(s.lastMask) : null };
  } catch (err) {
    s.log.error({ err: (err as Error).message, epoch: epoch + 1 }, 'training failed');
    if (err instanceof NonFiniteLossError) {
      const last = path.join(s.layout.checkpoints, 'last.json');
      err.message += fs.existsSync(last) ? `; the last good checkpoint is ${last}` : '; no checkpoint was written yet';
    }
    throw err;
  } finally {
    await s.log.close();
    s.metrics.close();
    s.lock.release();
    s.model.dispose();
    s.stepper.dispose();
  }
}
