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
import { loadDataset, trainBatches, testBatches, toTensors, stepsPerEpoch, type Batch, type Dataset, type Split } from '../data';
import { buildModel } from '../models/registry';
import type { Model } from '../models/types';
import { correctCount } from './objectives/losses';
import { type Sgd, learningRateAt } from './optimizer';
import { constantMaskHook } from './ib-hooks';
import { TrainStepper, NonFiniteLossError } from './step';
import { TrainingMonitor } from './info-plane';

export { NonFiniteLossError };
import { emptyAccumulator, EPOCH_COLUMNS, type EpochAccumulator, type EpochRecord } from './records';
import { saveCheckpoint, loadCheckpoint, readCheckpointSidecar, sidecarPath, type CheckpointSidecar } from './checkpoint';
import { writeFileAtomic } from '../runs/atomic';
import { getAttack } from '../attacks/registry';

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
import { createRunDir, runLayout, type RunLayout } from '../runs/run-dir';
import { acquireRunLock, type RunLock } from '../runs/lock';
import { MetricsWriter } from '../runs/metrics';
import { configHash } from '../runs/config-hash';
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
  /** The YAML file `cfg` came from, named in errors about config values found after loading. */
  configFile?: string;
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

/** Clean accuracy in eval mode, streamed in batches (with the stored mask when `applyAtEval`). */
export async function evaluateClean(model: Model, split: Split, batchSize: number, mask: Float32Array | null): Promise<number> {
  let correct = 0;
  const hook = mask ? constantMaskHook(mask) : undefined;
  for (const batch of testBatches(split, batchSize)) {
    const count = tf.tidy(() => {
      const { x, y } = toTensors(batch, 0);
      const { logits } = model.forward(x, { training: false, channelMask: hook });
      return correctCount(logits, y);
    });
    try {
      correct += (await count.data())[0];
    } finally {
      count.dispose();
    }
  }
  return split.n === 0 ? 0 : correct / split.n;
}

/** Attack names a config refers to, checked against the registry before anything runs. */
function checkAttackNames(cfg: ExperimentConfig): void {
  const refs: Array<[string, string]> = [
    ...cfg.eval.attacks.map((a, i): [string, string] => [`eval.attacks.${i}`, a]),
    ['probe.attack', cfg.probe.attack],
    ...(cfg.train.monitor ? [['train.monitor.attack', cfg.train.monitor.attack] as [string, string]] : []),
  ];
  for (const [where, name] of refs) {
    try {
      getAttack(name);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(`${where}: ${err.message}`);
      throw err;
    }
  }
}

/** A UserError that names no file came from the config (a layer, a subset size...): say which config. */
function inConfigFile(err: unknown, file: string | undefined): unknown {
  return err instanceof UserError && !err.file && file && !(err instanceof NonFiniteLossError) ? new UserError(err.message, file) : err;
}

async function openSession(opts: TrainOptions): Promise<{ session: Session; sidecar: CheckpointSidecar | null; backend: BackendInfo }> {
  let cfg: ExperimentConfig;
  let runDir: string | null = null;
  let configFile = opts.configFile;
  if (opts.resumeDir) {
    const layout = runLayout(opts.resumeDir);
    if (!fs.existsSync(layout.config)) throw new UserError('not a run directory (config.yaml missing)', opts.resumeDir);
    cfg = loadConfig(layout.config);
    runDir = opts.resumeDir;
    configFile = layout.config;
  } else if (opts.cfg) {
    cfg = opts.cfg;
  } else {
    throw new UserError('train needs a config or a run directory to resume');
  }

  const backend = await initBackend(cfg.backend);
  // Everything that can fail on bad input happens before the run dir is made.
  let dataset: Dataset;
  let model: Model | null = null;
  let stepper: TrainStepper | null = null;
  try {
    checkAttackNames(cfg);
    dataset = await loadDataset(cfg.data, cfg.seed, { log: (msg) => opts.progress?.onNote?.(msg) });
    model = buildModel(cfg.model, dataset.numClasses, dataset.shape, new Rng(cfg.seed).fork('init'));
    stepper = new TrainStepper(cfg, model, dataset.numClasses);
  } catch (err) {
    stepper?.dispose();
    model?.dispose();
    throw inConfigFile(err, configFile);
  }

  if (!runDir) runDir = createRunDir(cfg.runsDir, cfg.name);
  const layout = runLayout(runDir);
  const lock = acquireRunLock(layout);
  let log: RunLogger | null = null;
  try {
    const hash = configHash(cfg);
    const optimizer = stepper.optimizer;
    let sidecar: CheckpointSidecar | null = null;
    if (!opts.resumeDir) {
      // Atomic: a kill while writing must not leave a half config that blocks --resume.
      writeFileAtomic(layout.config, configToYaml(cfg));
    } else if (fs.existsSync(sidecarPath(layout.checkpoints, 'last'))) {
      // Validated completely before anything in the run dir changes (no log line on failure).
      const loaded = loadCheckpoint(layout.checkpoints, 'last', model);
      sidecar = loaded.sidecar;
      optimizer.importState(loaded.optimizerState, resumeState(sidecar).optimizerStarted);
    } else {
      // Stopped before its first checkpoint committed: nothing to lose, start the run over.
      opts.progress?.onNote?.(`no checkpoint in ${layout.checkpoints} yet: starting this run from the beginning`);
    }
    const completed = sidecar ? sidecar.epoch : 0;
    const metrics = MetricsWriter.open(layout, { columns: [...EPOCH_COLUMNS], truncateAfterEpoch: completed });
    log = createRunLogger(layout);
    if (sidecar && sidecar.configHash !== hash) log.warn({ saved: sidecar.configHash, now: hash }, 'config hash differs from the checkpoint');

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
  } catch (err) {
    await log?.close();
    lock.release();
    stepper.dispose();
    model.dispose();
    throw err;
  }
}

async function checkpoint(s: Session, tag: string, epoch: number, stepInEpoch: number, acc: EpochAccumulator | null, metricsRecord: Record<string, number>): Promise<void> {
  const state: ResumeState = { optimizerStarted: s.optimizer.hasStarted, bestTestAcc: s.bestTestAcc, accumulator: acc };
  try {
    await saveCheckpointOf(s, tag, epoch, stepInEpoch, state, metricsRecord);
  } catch (err) {
    // Disk full, quota, read-only filesystem...: not a bug. Every file is written to a temp
    // name and renamed, so the previously committed checkpoint is untouched.
    const code = (err as NodeJS.ErrnoException).code;
    if (typeof code !== 'string') throw err;
    const prev = sidecarPath(s.layout.checkpoints, tag);
    throw new UserError(
      `cannot write checkpoint '${tag}' (${(err as Error).message}); ` +
        (fs.existsSync(prev) ? `the previous checkpoint ${prev} is intact` : 'no earlier checkpoint exists') +
        `. Free space or fix the folder, then continue with: ibrar train --resume ${s.layout.dir}`,
      s.layout.checkpoints,
    );
  }
}

async function saveCheckpointOf(s: Session, tag: string, epoch: number, stepInEpoch: number, state: ResumeState, metricsRecord: Record<string, number>): Promise<void> {
  await saveCheckpoint(s.layout.checkpoints, tag, {
    params: s.model.params,
    optimizerState: await s.optimizer.exportState(),
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

async function finishEpoch(s: Session, epoch: number, acc: EpochAccumulator, lr: number): Promise<EpochRecord> {
  const testAcc = await evaluateClean(s.model, s.dataset.test, s.cfg.train.evalBatchSize, s.cfg.ib.mask.applyAtEval ? s.lastMask : null);
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
  const perEpoch = stepsPerEpoch(s.dataset.train.n, cfg.train.batchSize);
  // Held-out monitoring (train.monitor): information plane, adversarial accuracy per epoch.
  const monitor = await TrainingMonitor.open({ cfg, runDir: s.layout.dir, dataset: s.dataset, model: s.model, globalStep: s.globalStep, completedEpochs: sidecar ? sidecar.epoch : 0, stepsPerEpoch: perEpoch });
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
        await monitor?.afterStep(s.globalStep, epoch, batch.step, s.lastMask);
        opts.progress?.onStep?.({
          epoch: epoch + 1,
          step: batch.step + 1,
          loss: acc.lossSum / Math.max(acc.steps, 1),
          acc: acc.seen ? acc.correct / acc.seen : 0,
          imagesPerSec: acc.seconds > 0 ? acc.seen / acc.seconds : 0,
        });
        // Steps are synchronous compute; without a macrotask turn, SIGINT/SIGTERM handlers
        // (and anything else on the event loop) would only run after the whole training.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const nextStep = batch.step + 1;
        const every = cfg.train.checkpointEvery;
        const stop = opts.shouldStop?.() ?? false;
        if (nextStep < perEpoch && (stop || (every && s.globalStep % every === 0))) {
          await checkpoint(s, 'last', epoch, nextStep, acc, {});
          s.log.info({ epoch: epoch + 1, step: nextStep, globalStep: s.globalStep }, 'mid-epoch checkpoint');
        }
        if (stop && nextStep < perEpoch) {
          interrupted = true;
          opts.progress?.onInterrupted?.({ runDir: s.layout.dir, epoch: epoch + 1, step: nextStep });
          return { runDir: s.layout.dir, records, interrupted, bestTestAcc: s.bestTestAcc, lastMask: s.lastMask ? Array.from(s.lastMask) : null };
        }
      }
      const record = await finishEpoch(s, epoch + 1, acc, lr);
      records.push(record);
      s.metrics.append(record);
      const improved = record.test_acc > s.bestTestAcc;
      if (improved) s.bestTestAcc = record.test_acc;
      // `best` first: a kill between the two saves re-runs this epoch, which rewrites `best`;
      // the other order could leave `last` claiming a best epoch that `best` never got.
      if (improved) await checkpoint(s, 'best', epoch + 1, 0, null, record);
      await checkpoint(s, 'last', epoch + 1, 0, null, record);
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
    try {
      s.log.error({ err: (err as Error).message, epoch: epoch + 1 }, 'training failed');
    } catch {
      // The log may be on the disk that just filled up; the error itself matters more.
    }
    if (err instanceof NonFiniteLossError) {
      const last = path.join(s.layout.checkpoints, 'last.json');
      let at = '';
      try {
        const sc = readCheckpointSidecar(s.layout.checkpoints, 'last');
        at = sc.step > 0 ? ` (epoch ${sc.epoch + 1}, after step ${sc.step})` : ` (end of epoch ${sc.epoch})`;
      } catch {
        // no readable checkpoint: said below
      }
      err.message += fs.existsSync(last) ? `; the last good checkpoint is ${last}${at}` : '; no checkpoint was written yet';
    }
    const io = err as NodeJS.ErrnoException;
    if (!(err instanceof UserError) && typeof io.code === 'string' && io.syscall) {
      // A file-system failure outside the checkpoint (metrics, log: disk full, quota...) is
      // not a bug; the committed checkpoint is untouched.
      throw new UserError(`${io.message}; the last checkpoint is intact. Fix it, then continue with: ibrar train --resume ${s.layout.dir}`, io.path ?? s.layout.dir);
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
