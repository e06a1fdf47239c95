// One optimisation step, usable without the CLI or a run directory (library API, benches,
// tests): adversarial inputs (if any) → loss inside the gradient tape → finiteness check →
// SGD update. Randomness is derived from (seed, epoch, step), so a step is reproducible.
// Values come back with `await data()`, so a step runs on backends without synchronous reads
// (webgpu), where the IB terms and the mask take the deferred route (./deferred-ib.ts).
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { toTensors, type BatchLike } from '../data/tensors';
import type { Model } from '../models/types';
import { getObjective } from './objectives/registry';
import type { Objective, Prepared, StepContext } from './objectives/types';
import { correctCount } from './objectives/losses';
import { Sgd } from './optimizer';
import { makeIbTerms, makeMaskHook, maskDue } from '../ib/hooks';
import { DeferredIb, type IbMode } from './deferred-ib';
import { backendReadsSync, readFirstValues } from '../engine/reads';

export interface StepOutcome {
  /** true when the batch was skipped for a non-finite loss/gradient (nanPolicy: skip). */
  skipped: boolean;
  n: number;
  loss: number;
  correct: number;
  /** ce, ib, kl, hx/<layer>, hy/<layer>, … */
  logs: Record<string, number>;
  /** The channel mask computed on this batch, if the mask was due. */
  mask: Float32Array | null;
}

export class NonFiniteLossError extends UserError {
  constructor(
    readonly epoch: number,
    readonly step: number,
    loss: number,
    gradSq: number,
  ) {
    super(
      `non-finite ${Number.isFinite(loss) ? 'gradient' : 'loss'} at epoch ${epoch + 1}, step ${step + 1} (loss ${loss}, |grad|² ${gradSq}); ` +
        `lower train.lr or set train.nanPolicy: skip`,
    );
    this.name = 'NonFiniteLossError';
  }
}

export interface TrainStepperOptions {
  /**
   * Where the IB terms and the channel mask read to the host: 'one-pass' inside the gradient
   * tape (backends with synchronous reads), 'deferred' ahead of it (src/train/deferred-ib.ts).
   * Default: deferred when IBRAR_IB_DEFERRED=1 or the active backend cannot read
   * synchronously (webgpu), else one-pass.
   */
  ibMode?: IbMode;
}

function defaultIbMode(): IbMode {
  return process.env.IBRAR_IB_DEFERRED === '1' || !backendReadsSync() ? 'deferred' : 'one-pass';
}

export class TrainStepper {
  readonly objective: Objective;
  readonly optimizer: Sgd;
  readonly ibMode: IbMode;
  private readonly trainable: tf.Variable[];
  private readonly buffers: tf.Variable[];
  private readonly ib: StepContext['ib'];
  private readonly deferred: DeferredIb | null;

  constructor(
    readonly cfg: ExperimentConfig,
    readonly model: Model,
    readonly numClasses: number,
    opts: TrainStepperOptions = {},
  ) {
    this.objective = getObjective(cfg.train.method);
    this.ibMode = opts.ibMode ?? defaultIbMode();
    this.deferred = this.ibMode === 'deferred' ? new DeferredIb(cfg, model, numClasses, this.objective) : null;
    this.optimizer = new Sgd(model.params, { lr: cfg.train.lr, momentum: cfg.train.momentum, weightDecay: cfg.train.weightDecay });
    this.trainable = model.params.filter((p) => p.trainable).map((p) => p.variable);
    this.buffers = model.params.filter((p) => !p.trainable).map((p) => p.variable);
    this.ib = cfg.ib.enabled && !this.deferred ? makeIbTerms(cfg.ib, model) : null;
  }

  /** `epoch` and `step` are 0-based; they seed the step's randomness and the mask schedule. */
  async step(batch: BatchLike, epoch: number, step: number): Promise<StepOutcome> {
    const { cfg, model } = this;
    const { x, y, yOneHot } = toTensors(batch, this.numClasses);
    const rng = new Rng(cfg.seed).fork(`step-${epoch}-${step}`);
    const due = cfg.ib.mask.enabled && maskDue(cfg.ib.mask, step);
    // A skipped batch must not leave NaN in the BatchNorm running statistics either.
    const saved = cfg.train.nanPolicy === 'skip' ? this.buffers.map((b) => tf.clone(b)) : [];
    const kept: Record<string, tf.Scalar> = {};
    const logs: Record<string, number> = {};
    let prepared: Prepared = {};
    let correctT: tf.Scalar | null = null;
    let value: tf.Scalar | null = null;
    let gradSqT: tf.Scalar | null = null;
    let grads: tf.NamedTensorMap = {};
    try {
      let mask: Float32Array | null = null;
      let ctx: StepContext = { cfg, model, x, y, yOneHot, rng, ib: this.ib };
      if (this.deferred) {
        prepared = await this.objective.prepare(ctx);
        ({ ctx, mask } = await this.deferred.plan(ctx, prepared, batch.y, due));
      } else {
        if (due) ctx.channelMask = makeMaskHook(cfg.ib, batch.y, this.numClasses, (m) => (mask = m));
        prepared = await this.objective.prepare(ctx);
      }
      ({ value, grads } = tf.variableGrads(() => {
        const out = this.objective.loss(ctx, prepared);
        for (const [k, v] of Object.entries(out.logs)) {
          if (typeof v === 'number') logs[k] = v;
          else kept[k] = tf.keep(v);
        }
        correctT = tf.keep(correctCount(out.logitsForAccuracy, y));
        return out.total;
      }, this.trainable));
      gradSqT = tf.tidy(() => tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))) as tf.Scalar);
      // One read for everything: each read is a device round trip on a GPU backend.
      const keys = Object.keys(kept);
      const [loss, gradSq, correct, ...logValues] = await readFirstValues([value, gradSqT, correctT!, ...keys.map((k) => kept[k])]);
      if (!(Number.isFinite(loss) && Number.isFinite(gradSq))) {
        if (cfg.train.nanPolicy !== 'skip') throw new NonFiniteLossError(epoch, step, loss, gradSq);
        this.buffers.forEach((b, i) => b.assign(saved[i]));
        return { skipped: true, n: batch.n, loss, correct: 0, logs: {}, mask: null };
      }
      this.optimizer.step(grads);
      if (cfg.train.doubleBnUpdate) {
        // The reference scripts run an extra train-mode forward per step to log accuracy,
        // which updates BN running statistics a second time (docs/method.md §3).
        tf.tidy(() => void model.forward(prepared.xAdv ?? x, { training: true }));
      }
      keys.forEach((k, i) => (logs[k] = logValues[i]));
      return { skipped: false, n: batch.n, loss, correct, logs, mask };
    } finally {
      tf.dispose([x, y, yOneHot, ...saved, ...Object.values(kept), ...Object.values(grads)]);
      if (value) value.dispose();
      if (gradSqT) (gradSqT as tf.Scalar).dispose();
      if (correctT) (correctT as tf.Scalar).dispose();
      if (prepared.xAdv) prepared.xAdv.dispose();
    }
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
