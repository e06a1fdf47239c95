// The training job: a readable story on top of openRun. One run dir per run; every epoch
// appends a metrics row and writes the `last` checkpoint (and `best` by test accuracy);
// `train.checkpointEvery` adds mid-epoch recovery points; resume is exact. When training is
// done, the evaluation the config asks for (`eval.attacks`) runs on the same model.
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { z } from 'zod';
import { tf } from '../engine/tf';
import type { BackendInfo } from '../engine/backend';
import type { ExperimentConfig } from '../config/schema';
import { MAX_CONFIG_BYTES } from '../config/load';
import { UserError } from '../errors';
import { readFileBounded } from '../engine/safe-read';
import { trainBatches, testBatches, toTensors, stepsPerEpoch, type Batch, type Split } from '../data';
import type { Model } from '../models/types';
import { correctCount } from '../train/objectives/losses';
import { learningRateAt } from '../train/optimizer';
import { constantMaskHook, maskDue } from '../ib/hooks';
import { TrainStepper, NonFiniteLossError } from '../train/step';
import { EPOCH_COLUMNS, type EpochRecord } from '../runs/records';
import { repairCheckpointDir, saveCheckpoint, readCheckpointSidecar, sidecarPath, type CheckpointSidecar } from '../runs/checkpoint';
import { acquireRunLock, type RunLock } from '../runs/lock';
import { MetricsWriter } from '../runs/metrics';
import { configHash } from '../runs/config-hash';
import { createRunLogger, type RunLogger } from '../runs/logger';
import type { RunLayout } from '../runs/run-dir';
import { RunTensorBoard } from '../runs/tensorboard-run';
import { openRun, inConfigFile, type OpenedRun } from './open-run';
import { TrainingMonitor } from './monitor';
import { initFromCheckpoint, importRecordSchema, initFromRecordSchema, resolveInitFromPath, type InitFromRecord } from './import';
import { evaluate, evalRequestFromConfig, type EvalOutcome, type EvalProgress } from './eval';

export { NonFiniteLossError };

export interface TrainProgress {
  onStart?(info: { runDir: string; backend: BackendInfo; stepsPerEpoch: number; epochs: number; startEpoch: number; startStep: number }): void;
  onEpochStart?(epoch: number, stepsPerEpoch: number, startStep: number): void;
  onStep?(info: { epoch: number; step: number; loss: number; acc: number; imagesPerSec: number }): void;
  onEpochEnd?(record: EpochRecord): void;
  onInterrupted?(info: { runDir: string; epoch: number; step: number }): void;
  /** The run's training was already complete (a `--resume` of a finished run). */
  onFinished?(info: { runDir: string; epochs: number }): void;
  /** Notes for the user (e.g. a dataset being fetched). */
  onNote?(message: string): void;
}

export interface TrainRequest {
  cfg?: ExperimentConfig;
  /** Continue the run in this directory from its newest checkpoint that verifies. */
  resumeDir?: string;
  /** Resume even though config.yaml changed since the checkpoint (recorded in the run's log). */
  force?: boolean;
  /** The YAML file `cfg` came from, named in errors about config values found after loading. */
  configFile?: string;
  progress?: TrainProgress;
  evalProgress?: EvalProgress;
  /** Polled after every step (and between attack iterations); true makes the job save and return. */
  shouldStop?: () => boolean;
}

export interface TrainResult {
  runDir: string;
  records: EpochRecord[];
  interrupted: boolean;
  /** The training was already complete when the job started (nothing was trained). */
  alreadyFinished: boolean;
  bestTestAcc: number;
  lastMask: number[] | null;
  /** The end-of-training evaluation (null when the config asks for none or it was interrupted first). */
  evaluation: EvalOutcome | null;
}

/** Running sums within an epoch; saved in mid-epoch checkpoints so resume is exact. */
const accumulatorSchema = z
  .object({
    steps: z.number().int().min(0),
    seen: z.number().int().min(0),
    correct: z.number().int().min(0),
    lossSum: z.number(),
    nanSkipped: z.number().int().min(0),
    seconds: z.number().min(0),
    logSums: z.record(z.number()),
  })
  .strict();
type EpochAccumulator = z.infer<typeof accumulatorSchema>;

function emptyAccumulator(): EpochAccumulator {
  return { steps: 0, seen: 0, correct: 0, lossSum: 0, nanSkipped: 0, seconds: 0, logSums: {} };
}

/** What the trainer keeps in the checkpoint sidecar's `state` to resume exactly. */
const resumeStateSchema = z
  .object({
    optimizerStarted: z.boolean(),
    /** -1 before the first epoch's test; an accuracy otherwise. */
    bestTestAcc: z.number().min(-1).max(1),
    /** Partial sums of the epoch in progress (mid-epoch checkpoints only). */
    accumulator: accumulatorSchema.nullable(),
    /** `--force` resumes with a changed config.yaml, in order. */
    forced: z.array(z.object({ at: z.string(), checkpointConfig: z.string(), runConfig: z.string() }).strict()).default([]),
    /** The checkpoint whose weights this run started from (`train.initFrom`). */
    initFrom: initFromRecordSchema.optional(),
    /** The run's weights were imported (`ibrar import`), not trained here. */
    imported: importRecordSchema.optional(),
  })
  .strict();
type ResumeState = z.infer<typeof resumeStateSchema>;

function sha256File(file: string): string {
  return createHash('sha256').update(readFileBounded(file, { maxBytes: MAX_CONFIG_BYTES, what: 'config' })).digest('hex');
}

/**
 * Everything a resume relies on, checked before any file of the run changes: the trainer's state
 * in the sidecar, the position within the config's epochs, and the config itself.
 */
function validateResume(run: OpenedRun, sidecar: CheckpointSidecar, perEpoch: number, force: boolean): { state: ResumeState; forcedNow: ResumeState['forced'][number] | null } {
  const { cfg } = run;
  const file = sidecarPath(run.checkpoint!.dir, run.checkpoint!.tag);
  const parsed = resumeStateSchema.safeParse(sidecar.state ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`invalid trainer state in the checkpoint: ${issue.message}`, file, ['state', ...issue.path].join('.'));
  }
  const state = parsed.data;
  if (sidecar.epoch > cfg.train.epochs) throw new UserError(`the checkpoint is at epoch ${sidecar.epoch}, beyond the config's ${cfg.train.epochs} epochs`, file, 'epoch');
  if (sidecar.step >= perEpoch) throw new UserError(`the checkpoint is at step ${sidecar.step} of an epoch that has ${perEpoch} steps`, file, 'step');
  if (sidecar.step > 0 && (sidecar.epoch === cfg.train.epochs || !state.accumulator)) {
    throw new UserError('a mid-epoch checkpoint must lie inside the training and carry the epoch sums', file, 'state.accumulator');
  }
  const acc = sidecar.step > 0 ? state.accumulator : null;
  if (acc) {
    // The sums cover exactly the steps done in this epoch (each trained or skipped as non-finite).
    if (acc.steps + acc.nanSkipped !== sidecar.step) {
      throw new UserError(`the epoch sums count ${acc.steps} trained and ${acc.nanSkipped} skipped steps, but the checkpoint is at step ${sidecar.step}`, file, 'state.accumulator.steps');
    }
    if (acc.seen > acc.steps * cfg.train.batchSize || acc.correct > acc.seen) {
      throw new UserError(`the epoch sums claim ${acc.correct} correct of ${acc.seen} seen in ${acc.steps} steps of ${cfg.train.batchSize}`, file, 'state.accumulator');
    }
  }
  if (sidecar.globalStep > sidecar.epoch * perEpoch + sidecar.step) {
    throw new UserError(`global step ${sidecar.globalStep} is beyond epoch ${sidecar.epoch} step ${sidecar.step} (${perEpoch} steps per epoch)`, file, 'globalStep');
  }
  const layout = run.layout!;
  let forcedNow: ResumeState['forced'][number] | null = null;
  const fileSha = sha256File(layout.config);
  // The file's own hash when the checkpoint has it; else (older checkpoints) the resolved config's.
  const changed = sidecar.configFileSha256 !== undefined ? sidecar.configFileSha256 !== fileSha : sidecar.configHash !== configHash(cfg);
  if (changed) {
    if (!force) {
      throw new UserError(
        `config.yaml changed since this checkpoint was written; resuming would mix two configs in one run. ` +
          `Start a new run, or resume anyway with --force (recorded in the run)`,
        layout.config,
      );
    }
    forcedNow = { at: new Date().toISOString(), checkpointConfig: sidecar.configFileSha256 ?? sidecar.configHash, runConfig: fileSha };
  }
  return { state, forcedNow };
}

interface Session {
  run: OpenedRun;
  cfg: ExperimentConfig;
  layout: RunLayout;
  model: Model;
  stepper: TrainStepper;
  metrics: MetricsWriter;
  log: RunLogger;
  lock: RunLock;
  hash: string;
  configFileSha256: string;
  lastMask: Float32Array | null;
  bestTestAcc: number;
  globalStep: number;
  forced: ResumeState['forced'];
  initFrom: InitFromRecord | undefined;
  imported: ResumeState['imported'];
  /** TensorBoard events of this session (null when train.tensorboard is false, or before the loop). */
  tb: RunTensorBoard | null;
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

async function checkpoint(s: Session, tag: string, epoch: number, stepInEpoch: number, acc: EpochAccumulator | null, metricsRecord: Record<string, number>): Promise<void> {
  const state: ResumeState = {
    optimizerStarted: s.stepper.optimizer.hasStarted,
    bestTestAcc: s.bestTestAcc,
    accumulator: acc,
    forced: s.forced,
    ...(s.initFrom ? { initFrom: s.initFrom } : {}),
    ...(s.imported ? { imported: s.imported } : {}),
  };
  try {
    await saveCheckpoint(s.layout.checkpoints, tag, {
      params: s.model.params,
      optimizerState: await s.stepper.optimizer.exportState(),
      sidecar: {
        arch: s.cfg.model.arch,
        epoch,
        step: stepInEpoch,
        globalStep: s.globalStep,
        // Randomness is derived statelessly from (seed, epoch, step), so no stream needs saving.
        rngState: {},
        configHash: s.hash,
        configFileSha256: s.configFileSha256,
        metrics: metricsRecord,
        mask: s.lastMask ? Array.from(s.lastMask) : undefined,
        state: state as unknown as Record<string, unknown>,
      },
    });
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
  const testAcc = await evaluateClean(s.model, s.run.dataset.test, s.cfg.train.evalBatchSize, s.cfg.ib.mask.applyAtEval ? s.lastMask : null);
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

/** Open (or resume) the run, validating everything before any file of it changes. */
async function openSession(req: TrainRequest): Promise<{ session: Session; sidecar: CheckpointSidecar | null; forcedNow: ResumeState['forced'][number] | null }> {
  const onNote = (msg: string) => req.progress?.onNote?.(msg);
  let run: OpenedRun;
  if (req.resumeDir) run = await openRun({ kind: 'existing', runDir: req.resumeDir, checkpoint: 'resume' }, { onNote });
  else if (req.cfg) run = await openRun({ kind: 'new', cfg: req.cfg, configFile: req.configFile }, { onNote });
  else throw new UserError('train needs a config or a run directory to resume');
  for (const problem of run.skippedCheckpoints) onNote(`checkpoint skipped: ${problem}`);

  const { cfg } = run;
  const perEpoch = stepsPerEpoch(run.dataset.train.n, cfg.train.batchSize);
  let stepper: TrainStepper | null = null;
  let lock: RunLock | null = null;
  let log: RunLogger | null = null;
  try {
    try {
      stepper = new TrainStepper(cfg, run.model, run.dataset.numClasses);
    } catch (err) {
      throw inConfigFile(err, run.configFile);
    }
    const sidecar = run.checkpoint?.sidecar ?? null;
    let resume: { state: ResumeState; forcedNow: ResumeState['forced'][number] | null } = {
      state: { optimizerStarted: false, bestTestAcc: -1, accumulator: null, forced: [] },
      forcedNow: null,
    };
    if (sidecar) {
      resume = validateResume(run, sidecar, perEpoch, Boolean(req.force));
      // The optimizer slots must fit this model too: checked (and loaded) before anything is
      // written. An optimizer that never stepped has nothing to restore (an imported run saves no slots).
      const slots = run.checkpoint?.optimizerState ?? [];
      if (resume.state.optimizerStarted || slots.length > 0) {
        try {
          stepper.optimizer.importState(slots, resume.state.optimizerStarted);
        } catch (err) {
          if (err instanceof UserError) throw err;
          const c = run.checkpoint!;
          throw new UserError(`the optimizer state does not fit the model: ${(err as Error).message}`, sidecar.files.optimizer ? path.join(c.dir, sidecar.files.optimizer.file) : sidecarPath(c.dir, c.tag));
        }
      }
    } else if (req.resumeDir) onNote(`no checkpoint in ${run.layout!.checkpoints} yet: starting this run from the beginning`);
    // Fine-tuning: the starting weights come from another run's checkpoint, loaded (and checked
    // against this model) before the run directory exists. A resumed run's checkpoint has them.
    let initFrom = resume.state.initFrom;
    if (!sidecar && cfg.train.initFrom) {
      try {
        initFrom = initFromCheckpoint(run.model, cfg.train.initFrom, { modelCfg: cfg.model, onNote });
      } catch (err) {
        throw inConfigFile(err, run.configFile);
      }
    }

    // From here on the run directory is written to.
    const layout = run.createDir();
    lock = acquireRunLock(layout);
    if (sidecar) repairCheckpointDir(layout.checkpoints);
    const completed = sidecar ? sidecar.epoch : 0;
    const metrics = MetricsWriter.open(layout, { columns: [...EPOCH_COLUMNS], truncateAfterEpoch: completed });
    log = createRunLogger(layout);
    const hash = configHash(cfg);
    if (resume.forcedNow) log.warn({ ...resume.forcedNow }, 'resumed with --force although config.yaml changed since the checkpoint');
    const session: Session = {
      run,
      cfg,
      layout,
      model: run.model,
      stepper,
      metrics,
      log,
      lock,
      hash,
      configFileSha256: sha256File(layout.config),
      lastMask: sidecar?.mask ? Float32Array.from(sidecar.mask) : null,
      bestTestAcc: resume.state.bestTestAcc,
      globalStep: sidecar?.globalStep ?? 0,
      forced: resume.forcedNow ? [...resume.state.forced, resume.forcedNow] : resume.state.forced,
      initFrom,
      imported: resume.state.imported,
      tb: null,
    };
    log.info({ backend: run.backend, config: cfg, resume: Boolean(req.resumeDir), configHash: hash }, 'session opened');
    if (initFrom && !sidecar) log.info({ initFrom }, 'weights initialised from another run\'s checkpoint');
    return { session, sidecar, forcedNow: resume.forcedNow };
  } catch (err) {
    await log?.close();
    lock?.release();
    stepper?.dispose();
    run.dispose();
    throw err;
  }
}

function closeSession(s: Session): Promise<void> {
  s.tb?.close();
  s.metrics.close();
  s.lock.release();
  s.stepper.dispose();
  return s.log.close();
}

/** Train (or resume), then run the config's evaluation on the trained model. */
export async function train(req: TrainRequest): Promise<TrainResult> {
  // A relative train.initFrom is relative to the working directory; the saved config holds it absolute.
  if (req.cfg?.train.initFrom && !req.resumeDir) req = { ...req, cfg: { ...req.cfg, train: { ...req.cfg.train, initFrom: resolveInitFromPath(req.cfg.train.initFrom) } } };
  const { session: s, sidecar } = await openSession(req);
  const { cfg } = s;
  const records: EpochRecord[] = [];
  const perEpoch = stepsPerEpoch(s.run.dataset.train.n, cfg.train.batchSize);
  const result = (interrupted: boolean, alreadyFinished = false): TrainResult => ({
    runDir: s.layout.dir,
    records,
    interrupted,
    alreadyFinished,
    bestTestAcc: s.bestTestAcc,
    lastMask: s.lastMask ? Array.from(s.lastMask) : null,
    evaluation: null,
  });
  let sessionOpen = true;
  try {
    const alreadyFinished = Boolean(sidecar && sidecar.epoch >= cfg.train.epochs && sidecar.step === 0);
    let out: TrainResult;
    if (alreadyFinished) {
      req.progress?.onFinished?.({ runDir: s.layout.dir, epochs: cfg.train.epochs });
      out = result(false, true);
    } else {
      out = await trainLoop(s, sidecar, records, perEpoch, req, result);
    }
    if (out.interrupted || cfg.eval.attacks.length === 0) return out;
    // The evaluation reads nothing of the training session but the run dir and the model.
    sessionOpen = false;
    await closeSession(s);
    const evalReq = evalRequestFromConfig(cfg);
    s.run.useCheckpoint(evalReq.checkpoint);
    out.evaluation = await evaluate(s.run, evalReq, { progress: req.evalProgress, shouldStop: req.shouldStop });
    if (out.evaluation.interrupted) out.interrupted = true;
    return out;
  } finally {
    if (sessionOpen) await closeSession(s).catch(() => undefined);
    s.run.dispose();
  }
}

async function trainLoop(
  s: Session,
  sidecar: CheckpointSidecar | null,
  records: EpochRecord[],
  perEpoch: number,
  req: TrainRequest,
  result: (interrupted: boolean) => TrainResult,
): Promise<TrainResult> {
  const { cfg } = s;
  // TensorBoard events: a new file per session; what earlier sessions committed but never wrote
  // there (a kill between a commit and its event) is written first, after the monitor has
  // dropped its records past the checkpoint.
  s.tb = RunTensorBoard.open(s.layout.dir, cfg.train.tensorboard);
  // Held-out monitoring (train.monitor): information plane, adversarial accuracy per epoch.
  const monitor = await TrainingMonitor.open({
    cfg,
    runDir: s.layout.dir,
    dataset: s.run.dataset,
    model: s.model,
    globalStep: s.globalStep,
    completedEpochs: sidecar ? sidecar.epoch : 0,
    stepsPerEpoch: perEpoch,
    tensorboard: s.tb,
  });
  s.tb?.backfill();
  // A checkpoint mid-epoch stores its epoch (0-based, in progress) and the next step.
  let epoch = sidecar ? sidecar.epoch : 0;
  let startStep = sidecar && sidecar.step > 0 ? sidecar.step : 0;
  const saved = sidecar ? resumeStateSchema.parse(sidecar.state ?? {}) : null;
  let acc: EpochAccumulator = sidecar && sidecar.step > 0 && saved?.accumulator ? saved.accumulator : emptyAccumulator();
  req.progress?.onStart?.({ runDir: s.layout.dir, backend: s.run.backend, stepsPerEpoch: perEpoch, epochs: cfg.train.epochs, startEpoch: epoch, startStep });
  try {
    for (; epoch < cfg.train.epochs; epoch++) {
      const lr = learningRateAt(epoch, cfg.train.lr, cfg.train.schedule);
      s.stepper.optimizer.lr = lr;
      req.progress?.onEpochStart?.(epoch + 1, perEpoch, startStep);
      const batches = trainBatches(s.run.dataset.train, {
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
        req.progress?.onStep?.({
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
        const stop = req.shouldStop?.() ?? false;
        if (nextStep < perEpoch && (stop || (every && s.globalStep % every === 0))) {
          await checkpoint(s, 'last', epoch, nextStep, acc, {});
          s.log.info({ epoch: epoch + 1, step: nextStep, globalStep: s.globalStep }, 'mid-epoch checkpoint');
        }
        if (stop && nextStep < perEpoch) {
          req.progress?.onInterrupted?.({ runDir: s.layout.dir, epoch: epoch + 1, step: nextStep });
          return result(true);
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
      s.tb?.epoch(record);
      s.log.info({ ...record }, 'epoch');
      req.progress?.onEpochEnd?.(record);
      acc = emptyAccumulator();
      startStep = 0;
      if (req.shouldStop?.() && epoch + 1 < cfg.train.epochs) {
        req.progress?.onInterrupted?.({ runDir: s.layout.dir, epoch: epoch + 2, step: 0 });
        return result(true);
      }
    }
    return result(false);
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
  }
}

export interface TrainEstimate {
  stepsPerEpoch: number;
  epochs: number;
  totalSteps: number;
  /** Median seconds of the timed ordinary steps (and of a mask step, when the mask is on). */
  secondsPerStep: number;
  secondsPerMaskStep: number | null;
  /** Training alone (steps and the per-epoch clean test pass), in seconds. */
  estimatedSeconds: number;
  backend: BackendInfo;
  timedSteps: number;
}

/**
 * How long a config's training takes here: a few real steps timed (after one warm-up), scaled
 * to the whole run, plus one timed clean test pass per epoch. Nothing is written.
 */
export async function estimateTraining(cfg: ExperimentConfig, opts: { steps?: number; onNote?: (m: string) => void } = {}): Promise<TrainEstimate> {
  const run = await openRun({ kind: 'new', cfg }, { onNote: opts.onNote });
  const stepper = new TrainStepper(run.cfg, run.model, run.dataset.numClasses);
  try {
    const perEpoch = stepsPerEpoch(run.dataset.train.n, cfg.train.batchSize);
    const wanted = Math.max(1, opts.steps ?? 2);
    // The step index decides only the randomness and whether the mask is due, so any batch can be
    // timed as an ordinary step and as a mask step.
    const due = (k: number) => cfg.ib.mask.enabled && maskDue(cfg.ib.mask, k);
    const dueSteps = Array.from({ length: perEpoch }, (_, k) => k).filter(due);
    const ordinary = Array.from({ length: perEpoch }, (_, k) => k).find((k) => !due(k));
    const batches = [...takeBatches(trainBatches(run.dataset.train, { batchSize: cfg.train.batchSize, seed: cfg.seed, epoch: 0, shuffle: true, augment: cfg.data.augment }), wanted + 2)];
    const timeStep = async (b: Batch, k: number) => {
      const t0 = process.hrtime.bigint();
      await stepper.step(b, 0, k);
      return Number(process.hrtime.bigint() - t0) / 1e9;
    };
    await timeStep(batches[0], ordinary ?? 0); // warm-up: kernels compiled, buffers allocated
    const times: number[] = [];
    for (let i = 1; i <= wanted && ordinary !== undefined; i++) times.push(await timeStep(batches[i % batches.length], ordinary));
    const maskTimes = dueSteps.length ? [await timeStep(batches[batches.length - 1], dueSteps[0])] : [];
    const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const step = times.length ? median(times) : median(maskTimes);
    const maskStep = maskTimes.length ? median(maskTimes) : null;
    const maskShare = dueSteps.length / perEpoch;
    const t0 = process.hrtime.bigint();
    await evaluateClean(run.model, run.dataset.test, cfg.train.evalBatchSize, null);
    const testPass = Number(process.hrtime.bigint() - t0) / 1e9;
    const perStep = maskStep === null ? step : step * (1 - maskShare) + maskStep * maskShare;
    return {
      stepsPerEpoch: perEpoch,
      epochs: cfg.train.epochs,
      totalSteps: perEpoch * cfg.train.epochs,
      secondsPerStep: step,
      secondsPerMaskStep: maskStep,
      estimatedSeconds: cfg.train.epochs * (perEpoch * perStep + testPass),
      backend: run.backend,
      timedSteps: times.length + maskTimes.length,
    };
  } finally {
    stepper.dispose();
    run.dispose();
  }
}

function* takeBatches(gen: Iterable<Batch>, n: number): Generator<Batch> {
  let k = 0;
  for (const b of gen) {
    if (k++ >= n) return;
    yield b;
  }
}
