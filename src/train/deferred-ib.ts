// The IB terms and the channel mask without a synchronous read inside the training step, for
// backends that cannot read a tensor synchronously (webgpu in Node) or when forced
// (IBRAR_IB_DEFERRED=1, TrainStepper's `ibMode`). The one-pass step reads each tap's Gram
// matrix to the host inside the gradient tape (HSIC's float64 algebra) and the mask tap's
// features inside the forward. Here those reads move before the tape opens:
//   a. mask due: a train-mode forward of the objective, outside the tape, records what every
//      mask-hook call would compute its mask from; after `await`, the masks are computed on
//      the host as the one-pass hook computes them, and are constants for the next passes;
//   b. IB on: another such forward records every IB call's tap Grams (and X's and Y's); after
//      `await`, each call's value, per-layer terms and gradient operators are computed on the
//      host (ibTermsFromGrams, the one-pass path's own host math);
//   c. the taped pass: IB call i returns ibLossFromHost, with the one-pass value and gradient.
// Every pass gets the same inputs, the same masks and an Rng in the same state, so the forwards
// repeat exactly; BatchNorm running statistics are restored before the taped pass, which
// updates them once. Cost: one extra forward per step with IB, one more on mask batches.
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import type { ForwardOptions, Model } from '../models/types';
import {
  centredGramTensor,
  channelMaskFromHost,
  checkIbArgs,
  ibLossFromHost,
  ibTargetsFromGrams,
  ibTermsFromGrams,
  labelTarget,
  maskReadout,
  readMaskAsync,
  resolveLayers,
  type HostGram,
  type IbHostTerms,
  type MaskReadout,
} from '../ib';
import { ibLogs, maskRuleOf } from '../ib/hooks';
import type { IbTermsFn, Objective, Prepared, StepContext } from './objectives/types';

/** How a step gets its IB terms and mask: read inside the tape, or ahead of it. */
export type IbMode = 'one-pass' | 'deferred';

/** What deferred mode cannot reproduce exactly; null when the config is fine. */
export function deferredRefusal(cfg: ExperimentConfig): string | null {
  if (cfg.train.method === 'hbar') {
    return "train.method 'hbar' computes its HSIC terms inside its own loss, outside the hook the deferred IB mode replaces";
  }
  const extraPasses = cfg.ib.enabled || cfg.ib.mask.enabled;
  if (extraPasses && cfg.model.dropout > 0) {
    return `model.dropout ${cfg.model.dropout} draws new dropout masks in every forward, so the extra forwards of the deferred IB mode would not repeat the taped one`;
  }
  return null;
}

/** The taped pass's context, and the mask computed on this batch (if it was due). */
export interface DeferredPlan {
  ctx: StepContext;
  mask: Float32Array | null;
}

/** A tensor left on the backend to be read, with the feature width its Gram was made from. */
interface PendingGram {
  gram: tf.Tensor;
  d: number;
}

interface RecordedCall {
  prefix: string;
  taps: PendingGram[];
  /** Index into the recorded (X, Y) target pairs. */
  target: number;
}

interface ComputedCall {
  prefix: string;
  terms: IbHostTerms;
}

export class DeferredIb {
  private readonly layers: string[];
  private readonly buffers: tf.Variable[];

  constructor(
    private readonly cfg: ExperimentConfig,
    model: Model,
    private readonly numClasses: number,
    private readonly objective: Objective,
  ) {
    const why = deferredRefusal(cfg);
    if (why) {
      throw new UserError(
        `${why}. The deferred IB mode is used on backends that cannot read tensors synchronously (webgpu) and with IBRAR_IB_DEFERRED=1; ` +
          'train this config on backend wasm, cpu or tensorflow',
      );
    }
    this.layers = cfg.ib.enabled ? resolveLayers(cfg.ib.layers, model) : [];
    this.buffers = model.params.filter((p) => !p.trainable).map((p) => p.variable);
  }

  /**
   * Passes a and b for one step (after the objective's `prepare`); returns the context of the
   * taped pass. `ctx.rng` must be in the state the taped pass is to see.
   */
  async plan(ctx: StepContext, prepared: Prepared, labels: ArrayLike<number>, maskIsDue: boolean): Promise<DeferredPlan> {
    const rngState = ctx.rng.getState();
    const pass = (over: Partial<StepContext>): StepContext => ({ ...ctx, rng: new Rng(rngState), ...over });
    if (!maskIsDue && !this.cfg.ib.enabled) return { ctx: pass({ ib: null, channelMask: undefined }), mask: null };

    const snapshot = this.buffers.map((b) => tf.clone(b));
    try {
      const masks = maskIsDue ? await this.computeMasks(pass({ ib: null, channelMask: undefined }), prepared, labels) : null;
      const calls = this.cfg.ib.enabled ? await this.computeIb(pass({ ib: null, channelMask: constantMasks(masks) }), prepared) : null;
      return {
        ctx: pass({ ib: calls ? this.hostTerms(calls) : null, channelMask: constantMasks(masks) }),
        mask: masks && masks.length > 0 ? masks[masks.length - 1] : null,
      };
    } finally {
      // The recording forwards updated the running statistics; the taped pass updates them once.
      this.buffers.forEach((b, i) => b.assign(snapshot[i]));
      tf.dispose(snapshot);
    }
  }

  /** Pass a: every mask-hook call's inputs, read, then the masks (makeMaskHook's rule). */
  private async computeMasks(ctx: StepContext, prepared: Prepared, labels: ArrayLike<number>): Promise<Float32Array[]> {
    const ib = this.cfg.ib;
    const readouts: MaskReadout[] = [];
    const rule = maskRuleOf(ib);
    try {
      tf.tidy(() => {
        const record: ForwardOptions['channelMask'] = (features, input) => {
          const r = maskReadout(features, input, rule);
          readouts.push({ ...r, channels: tf.keep(r.channels), input: r.input ? tf.keep(r.input) : null });
          return null;
        };
        this.objective.loss({ ...ctx, channelMask: record }, prepared);
      });
    } catch (err) {
      for (const r of readouts) tf.dispose([r.channels, ...(r.input ? [r.input] : [])]);
      throw err;
    }
    const hosts = await Promise.all(readouts.map(readMaskAsync));
    const args = { labels, numClasses: this.numClasses, rule, sigma: ib.sigma };
    const yTarget = labelTarget(labels, this.numClasses, { sigma: ib.sigma });
    return hosts.map((h) => channelMaskFromHost(h, args, yTarget).mask);
  }

  /** Pass b: every IB call's Grams, read, then its host terms. */
  private async computeIb(ctx: StepContext, prepared: Prepared): Promise<ComputedCall[]> {
    const calls: RecordedCall[] = [];
    const targets: Array<{ x: tf.Tensor; y: tf.Tensor; grams: [PendingGram, PendingGram] }> = [];
    try {
      tf.tidy(() => {
        const record: IbTermsFn = (taps, xForIb, yOneHot, prefix) => {
          checkIbArgs(xForIb, yOneHot, taps, this.layers);
          // TRADES/MART pair both passes with the same X and Y: read once, as makeIbTerms caches them.
          let target = targets.findIndex((t) => t.x === xForIb && t.y === yOneHot);
          if (target < 0) target = targets.push({ x: xForIb, y: yOneHot, grams: [pendingGram(xForIb), pendingGram(yOneHot)] }) - 1;
          calls.push({ prefix, target, taps: this.layers.map((name) => pendingGram(taps[name])) });
          return { loss: tf.scalar(0), logs: {} };
        };
        this.objective.loss({ ...ctx, ib: record }, prepared);
      });
      const { ib } = this.cfg;
      const opts = { sigma: ib.sigma };
      const hostTargets = await Promise.all(
        targets.map(async (t) => {
          const [xg, yg] = await Promise.all(t.grams.map(readGram));
          return ibTargetsFromGrams(xg, yg, ib.yKernel, opts);
        }),
      );
      return await Promise.all(
        calls.map(async (c) => {
          const read = await Promise.all(c.taps.map(readGram));
          const grams = Object.fromEntries(this.layers.map((name, k) => [name, read[k]]));
          return { prefix: c.prefix, terms: ibTermsFromGrams(grams, hostTargets[c.target], this.layers, ib.alpha, ib.beta, opts) };
        }),
      );
    } finally {
      tf.dispose([...calls.flatMap((c) => c.taps), ...targets.flatMap((t) => t.grams)].map((p) => p.gram));
    }
  }

  /** Pass c's IB function: call i returns the terms computed for recorded call i. */
  private hostTerms(calls: ComputedCall[]): IbTermsFn {
    let next = 0;
    const { alpha, beta } = this.cfg.ib;
    return (taps, xForIb, yOneHot, prefix) => {
      const call = calls[next++];
      if (!call || call.prefix !== prefix) {
        throw new Error(`deferred IB: the taped pass made IB call ${next} ('${prefix}'), which the recording pass did not make the same way`);
      }
      checkIbArgs(xForIb, yOneHot, taps, this.layers);
      return { loss: ibLossFromHost(taps, this.layers, call.terms, alpha, beta), logs: ibLogs(call.terms.perLayer, prefix) };
    };
  }
}

/** centredGramTensor(z), kept past the recording pass's tidy. */
function pendingGram(z: tf.Tensor): PendingGram {
  return { gram: tf.keep(centredGramTensor(z)), d: z.size / z.shape[0] };
}

async function readGram(p: PendingGram): Promise<HostGram> {
  return { gram: (await p.gram.data()) as Float32Array, m: p.gram.shape[0], d: p.d };
}

/** A mask hook handing out masks[0], masks[1], … to successive forwards (constant tensors). */
function constantMasks(masks: Float32Array[] | null): ForwardOptions['channelMask'] {
  if (!masks) return undefined;
  let next = 0;
  return () => {
    const mask = masks[next++];
    if (!mask) throw new Error(`deferred IB: forward ${next} asked for a channel mask the recording pass did not compute`);
    return tf.tensor1d(mask);
  };
}
