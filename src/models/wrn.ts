// WideResNet as in the IB-RAR code (`model/wideresnet.py`, WRN-28-10 with dropout 0.3 in the
// paper's runs; docs/method.md §0). Depth 6n+4, widen factor k: stem conv 3×3 → 16; three groups of
// n pre-activation blocks with 16k, 32k, 64k channels and strides 1, 2, 2; BN → ReLU → global
// average pool → Linear(64k, classes). `width` does not apply (use `widen`).
//
// Block (pre-activation, as the reference, which differs from Zagoruyko's original in three
// places: every conv has a bias, the stride sits on conv2, and the 1×1 projection shortcut
// reads the block input x, not relu(bn1(x))):
//   out = conv1(relu(bn1(x))) → dropout → conv2(relu(bn2(·)))  [conv2 has the stride]
//   block output = out + (1×1 conv(x) if stride ≠ 1 or channels change, else x)
// The final BatchNorm is nn.BatchNorm2d(64k, momentum=0.9) in the reference, so its running
// statistics move 90 % towards each batch; reproduced here. The reference pools with
// AdaptiveAvgPool2d(8) before that BN and avg_pool2d(8) after: for 32×32 inputs (8×8 maps)
// that is the global mean taken here after BN → ReLU.
// WRN-28-10 has 36,489,290 parameters this way (36,479,194 without the conv biases).
//
// Parameter names = the reference state_dict keys:
//   conv1.weight|bias
//   layer{g}.{i}.bn1.*, layer{g}.{i}.conv1.weight|bias, layer{g}.{i}.bn2.*,
//   layer{g}.{i}.conv2.weight|bias, layer{g}.{i}.shortcut.0.weight|bias (1×1 projection)
//   bn1.{weight,bias,running_mean,running_var} (final BN), linear.weight|bias
// Taps: conv1 (raw stem conv output, as the reference records it), layer{g}.{i} (block outputs,
// the residual sums: not post-activation in a pre-activation net), pool (post BN-ReLU, pooled).
// The channel mask attaches to the output of group 2, tap `layer2.{n−1}` ("10+10 on the
// stage-2 output", docs/method.md §2); the masked tensor is that tap and feeds group 3 (the code
// records the tap before masking).
import type { Rng } from '../engine/rng';
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import type { Model, ModelOptions } from './types';
import { BatchNorm, Conv2d, Dropout, Linear, applyChannelMask, globalAvgPool, relu } from './layers';
import { ParamBuilder } from './params';
import { wrnBlocks, wrnTaps } from '../config/facts';
import { checkCommonOptions, createModel } from './model';

/** Blocks per group for a given depth (6n + 4). */
export function wrnBlocksPerGroup(depth: number): number {
  const n = wrnBlocks(depth);
  if (n === null) throw new UserError(`wrn: model.depth must be 6n+4 with n ≥ 1 (10, 16, 22, 28, …), got ${depth}`);
  return n;
}

/** Tap names for a depth (the rule lives in config/facts.ts, where config validation reads it too). */
export function wrnTapNames(depth: number): string[] {
  return wrnTaps(wrnBlocksPerGroup(depth));
}

class WideBasic {
  private readonly bn1: BatchNorm;
  private readonly conv1: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly shortcut: Conv2d | null;

  constructor(
    pb: ParamBuilder,
    name: string,
    inPlanes: number,
    planes: number,
    stride: number,
    private readonly dropout: Dropout,
  ) {
    this.bn1 = new BatchNorm(pb, `${name}.bn1`, inPlanes);
    this.conv1 = new Conv2d(pb, `${name}.conv1`, inPlanes, planes, { kernel: 3, padding: 1, bias: true });
    this.bn2 = new BatchNorm(pb, `${name}.bn2`, planes);
    this.conv2 = new Conv2d(pb, `${name}.conv2`, planes, planes, { kernel: 3, stride, padding: 1, bias: true });
    this.shortcut =
      stride !== 1 || inPlanes !== planes
        ? new Conv2d(pb, `${name}.shortcut.0`, inPlanes, planes, { kernel: 1, stride, padding: 0, bias: true })
        : null;
  }

  apply(x: tf.Tensor4D, training: boolean, sample?: Rng): tf.Tensor4D {
    let out = this.dropout.apply(this.conv1.apply(this.bn1.applyRelu(x, training)), training, sample);
    out = this.conv2.apply(this.bn2.applyRelu(out, training));
    return tf.add(out, this.shortcut ? this.shortcut.apply(x) : x);
  }
}

export function buildWrn(opts: ModelOptions, rng: Rng): Model {
  checkCommonOptions('wrn', opts);
  const n = wrnBlocksPerGroup(opts.depth);
  const k = opts.widen;
  if (!Number.isInteger(k) || k < 1) throw new UserError(`wrn: model.widen must be a positive integer, got ${k}`);
  if (!(opts.dropout >= 0 && opts.dropout < 1)) throw new UserError(`wrn: model.dropout must be in [0, 1), got ${opts.dropout}`);
  const pb = new ParamBuilder(rng, 'wrn');
  const dropout = new Dropout(opts.dropout, rng.fork('dropout'));
  const conv1 = new Conv2d(pb, 'conv1', opts.inputShape[2], 16, { kernel: 3, padding: 1, bias: true });
  const blocks: { name: string; block: WideBasic }[] = [];
  let inPlanes = 16;
  [16 * k, 32 * k, 64 * k].forEach((planes, g) => {
    for (let i = 0; i < n; i++) {
      const name = `layer${g + 1}.${i}`;
      const stride = i === 0 && g > 0 ? 2 : 1;
      blocks.push({ name, block: new WideBasic(pb, name, inPlanes, planes, stride, dropout) });
      inPlanes = planes;
    }
  });
  const bnFinal = new BatchNorm(pb, 'bn1', inPlanes, { momentum: 0.9 });
  const linear = new Linear(pb, 'linear', inPlanes, opts.numClasses);
  const maskTap = `layer2.${n - 1}`;

  return createModel({
    arch: 'wrn',
    opts,
    stochastic: opts.dropout > 0,
    tapNames: wrnTapNames(opts.depth),
    maskTap,
    params: pb.params(),
    body: (x, input, fwd, record) => {
      let h = conv1.apply(x);
      h = record('conv1', h);
      for (const { name, block } of blocks) {
        h = block.apply(h, fwd.training, fwd.sample);
        if (name === maskTap) h = applyChannelMask(h, input, fwd.channelMask);
        h = record(name, h);
      }
      const pooled = record('pool', globalAvgPool(bnFinal.applyRelu(h, fwd.training)));
      return linear.apply(pooled);
    },
  });
}
