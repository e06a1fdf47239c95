// Held-out monitoring during training (`train.monitor`), on a fixed batch: the first `n`
// examples of the TEST split, model in eval mode (with the stored mask when `applyAtEval`).
//   infoPlaneEvery: every N global steps, HSIC(X, T_l) and HSIC(Y, T_l) of every tap (the
//     information plane of the paper's Fig. 5), same estimator as the IB terms (σ and the Y
//     kernel from `ib`) → <run>/info_plane.jsonl, one line per record.
//   advAccEvery: at the end of every N-th epoch, clean and adversarial accuracy under
//     `monitor.attack` (ε and steps from `eval`) → <run>/adv_curve.jsonl.
// Records are appended as they happen; on resume the lines past the checkpoint are dropped, so
// a resumed run has the same lines as an uninterrupted one. Nothing here changes the model or
// the training randomness.
import { appendRegular } from '../engine/safe-read';
import * as path from 'path';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import type { ExperimentConfig, MonitorConfig } from '../config/schema';
import { monitorSchema } from '../config/schema';
import { testBatches, toTensors, sliceSplit, type Dataset } from '../data';
import type { Model } from '../models/types';
import { ccaManyFromGram, ibTargetsFromGrams, readCentredGram, type CcaTarget } from '../ib';
import { predict } from '../attacks/common';
import { getAttack } from '../attacks/registry';
import { targetFromModel } from '../attacks/target';
import { constantMaskHook } from '../ib/hooks';
import { ADV_CURVE_FILE, INFO_PLANE_FILE, truncateJsonl, type AdvCurveRecord, type InfoPlaneRecord } from '../runs/monitor-files';
import type { RunTensorBoard } from '../runs/tensorboard-run';
import { attackParams } from './eval';

export interface MonitorArgs {
  cfg: ExperimentConfig;
  runDir: string;
  dataset: Dataset;
  model: Model;
  /** Global steps already done (a resumed run's checkpoint). */
  globalStep: number;
  /** Epochs completed before this session. */
  completedEpochs: number;
  stepsPerEpoch: number;
  /** Also writes each record as TensorBoard scalars (null or absent: not). */
  tensorboard?: RunTensorBoard | null;
}

export class TrainingMonitor {
  private readonly settings: MonitorConfig;
  private readonly x: Float32Array;
  private readonly y: Int32Array;
  private readonly shape: [number, number, number];
  private readonly m: number;
  private targets: [CcaTarget, CcaTarget] | null = null;
  private lastInfoStep = -1;

  private constructor(private readonly a: MonitorArgs) {
    this.settings = a.cfg.train.monitor ?? monitorSchema.parse({});
    const split = sliceSplit(a.dataset.test, 0, Math.min(this.settings.n, a.dataset.test.n));
    const batch = testBatches(split, split.n).next().value!;
    this.x = batch.x;
    this.y = batch.y;
    this.shape = batch.shape;
    this.m = batch.n;
  }

  /** null when nothing is to be recorded. Drops lines past the checkpoint on resume. */
  static async open(a: MonitorArgs): Promise<TrainingMonitor | null> {
    const s = a.cfg.train.monitor;
    if (!s || (!s.infoPlaneEvery && !s.advAccEvery) || a.dataset.test.n === 0) return null;
    const mon = new TrainingMonitor(a);
    truncateJsonl<InfoPlaneRecord>(path.join(a.runDir, INFO_PLANE_FILE), (r) => typeof r.step === 'number' && r.step <= a.globalStep);
    truncateJsonl<AdvCurveRecord>(path.join(a.runDir, ADV_CURVE_FILE), (r) => typeof r.epoch === 'number' && r.epoch <= a.completedEpochs);
    if (s.infoPlaneEvery && a.globalStep === 0) await mon.recordInfoPlane(0, null);
    else mon.lastInfoStep = a.globalStep;
    return mon;
  }

  /** After each training step; `epoch` and `stepInEpoch` are 0-based. */
  async afterStep(globalStep: number, epoch: number, stepInEpoch: number, mask: Float32Array | null): Promise<void> {
    const { infoPlaneEvery, advAccEvery } = this.settings;
    const evalMask = this.a.cfg.ib.mask.applyAtEval ? mask : null;
    if (infoPlaneEvery && globalStep % infoPlaneEvery === 0 && globalStep !== this.lastInfoStep) await this.recordInfoPlane(globalStep, evalMask);
    const epochDone = stepInEpoch + 1 === this.a.stepsPerEpoch;
    if (advAccEvery && epochDone && (epoch + 1) % advAccEvery === 0) await this.recordAdvAcc(epoch + 1, globalStep, evalMask);
  }

  private tensors(): { x: tf.Tensor4D; y: tf.Tensor1D; yOneHot: tf.Tensor2D } {
    return toTensors({ x: this.x, y: this.y, n: this.m, shape: this.shape }, this.a.dataset.numClasses);
  }

  // The taps' Grams are read with `await` (any backend) and the HSIC values computed on the
  // host by the IB terms' own math (ccaManyFromGram).
  private async recordInfoPlane(step: number, mask: Float32Array | null): Promise<void> {
    const { cfg, model, stepsPerEpoch } = this.a;
    const sigma = cfg.ib.sigma;
    const hx: Record<string, number> = {};
    const hy: Record<string, number> = {};
    const { x, y, yOneHot } = this.tensors();
    try {
      if (!this.targets) {
        const [gx, gy] = await Promise.all([readCentredGram(x), readCentredGram(yOneHot)]);
        const t = ibTargetsFromGrams(gx, gy, cfg.ib.yKernel, { sigma });
        this.targets = [t.x, t.y];
      }
      const taps = tf.tidy(() => model.forward(x, { training: false, channelMask: mask ? constantMaskHook(mask) : undefined }).taps);
      try {
        const grams = await Promise.all(model.tapNames.map((name) => readCentredGram(taps[name])));
        model.tapNames.forEach((name, k) => {
          [hx[name], hy[name]] = ccaManyFromGram(grams[k], this.targets!, { sigma }).values;
        });
      } finally {
        tf.dispose(Object.values(taps));
      }
    } finally {
      tf.dispose([x, y, yOneHot]);
    }
    const total = cfg.train.epochs * stepsPerEpoch;
    const rec: InfoPlaneRecord = { step, epoch: step / stepsPerEpoch, progress: total > 0 ? step / total : 0, n: this.m, hx, hy };
    appendRegular(path.join(this.a.runDir, INFO_PLANE_FILE), JSON.stringify(rec) + '\n', 'information-plane record file');
    this.a.tensorboard?.infoPlane(rec);
    this.lastInfoStep = step;
  }

  private async recordAdvAcc(epoch: number, step: number, mask: Float32Array | null): Promise<void> {
    const { cfg, model } = this.a;
    const name = this.settings.attack;
    const attack = getAttack(name);
    const params = attackParams(attack.name, { eps: cfg.eval.eps, steps: cfg.eval.steps, params: cfg.eval.params });
    const target = targetFromModel(model, { channelMask: mask ? constantMaskHook(mask) : undefined });
    const { x, y, yOneHot } = this.tensors();
    try {
      const cleanPred = await predict(target, x);
      const res = await attack.run({ target, rng: new Rng(cfg.seed).fork(`monitor-${epoch}`) }, x, y, params as never);
      const advPred = await predict(target, res.xAdv);
      res.xAdv.dispose();
      let clean = 0;
      let adv = 0;
      for (let i = 0; i < this.m; i++) {
        if (cleanPred[i] === this.y[i]) clean++;
        if (advPred[i] === this.y[i]) adv++;
      }
      const rec: AdvCurveRecord = {
        epoch,
        step,
        n: this.m,
        attack: attack.name,
        eps: cfg.eval.eps,
        steps: typeof params.steps === 'number' ? params.steps : null,
        clean_acc: clean / this.m,
        adv_acc: adv / this.m,
      };
      appendRegular(path.join(this.a.runDir, ADV_CURVE_FILE), JSON.stringify(rec) + '\n', 'adversarial-curve record file');
      this.a.tensorboard?.advCurve(rec);
    } finally {
      tf.dispose([x, y, yOneHot]);
    }
  }
}
