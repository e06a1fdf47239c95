// ResNet18, CIFAR variant, as in the IB-RAR code (`model/resnet.py`): 3×3 stem conv 64
// (stride 1, no bias) → BN → ReLU, no max-pool; four stages of two BasicBlocks
// (64, 128, 256, 512; first-block strides 1, 2, 2, 2); a 1×1 conv (no bias) + BN projection
// shortcut where the shape changes; global average pool; Linear(512, classes). `width` scales
// every channel count (round, ≥ 1).
//
// The reference takes AdaptiveAvgPool2d(4) then avg_pool2d(4): for 32×32 (and 28×28) inputs
// that is the global mean used here. Its forward returns log_softmax (docs/method.md §5); this one
// returns logits, which differ by a per-row constant (same CE, same argmax, different CW margins).
//
// BasicBlock: relu(bn1(conv1(x))) → bn2(conv2(·)) + shortcut(x) → relu.
// Parameter names = the reference state_dict keys:
//   conv1.weight, bn1.{weight,bias,running_mean,running_var}
//   layer{s}.{i}.conv1.weight, layer{s}.{i}.bn1.*, layer{s}.{i}.conv2.weight, layer{s}.{i}.bn2.*
//   layer{s}.{i}.shortcut.0.weight (1×1 conv), layer{s}.{i}.shortcut.1.* (its BN)
//   linear.weight, linear.bias
// Taps: conv1 (post-ReLU), layer1.0 … layer4.1 (block outputs, post-ReLU), pool (the pooled
// 512-d vector). The channel mask attaches to `pool`, as the code's fc_filter does ("20+20 on
// the pooled 512-d vector", docs/method.md §2); the masked vector is tap pool and feeds the linear
// layer (the code records the tap before masking).
import type { Rng } from '../engine/rng';
import { tf } from '../engine/tf';
import type { Model, ModelOptions } from './types';
import { BatchNorm, Conv2d, Linear, applyChannelMask, globalAvgPool, relu } from './layers';
import { ParamBuilder, scaled } from './params';
import { checkCommonOptions, createModel } from './model';

const STAGES = [
  { planes: 64, stride: 1 },
  { planes: 128, stride: 2 },
  { planes: 256, stride: 2 },
  { planes: 512, stride: 2 },
];
const BLOCKS_PER_STAGE = 2;

import { RESNET18_TAPS } from '../config/facts';

/** Tap names (the table lives in config/facts.ts, where config validation reads it too). */
export { RESNET18_TAPS };

class BasicBlock {
  private readonly conv1: Conv2d;
  private readonly bn1: BatchNorm;
  private readonly conv2: Conv2d;
  private readonly bn2: BatchNorm;
  private readonly shortcut: { conv: Conv2d; bn: BatchNorm } | null;

  constructor(pb: ParamBuilder, name: string, inPlanes: number, planes: number, stride: number) {
    this.conv1 = new Conv2d(pb, `${name}.conv1`, inPlanes, planes, { kernel: 3, stride, padding: 1 });
    this.bn1 = new BatchNorm(pb, `${name}.bn1`, planes);
    this.conv2 = new Conv2d(pb, `${name}.conv2`, planes, planes, { kernel: 3, padding: 1 });
    this.bn2 = new BatchNorm(pb, `${name}.bn2`, planes);
    this.shortcut =
      stride !== 1 || inPlanes !== planes
        ? {
            conv: new Conv2d(pb, `${name}.shortcut.0`, inPlanes, planes, { kernel: 1, stride, padding: 0 }),
            bn: new BatchNorm(pb, `${name}.shortcut.1`, planes),
          }
        : null;
  }

  apply(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    const out = this.bn2.apply(this.conv2.apply(this.bn1.applyRelu(this.conv1.apply(x), training)), training);
    const skip = this.shortcut ? this.shortcut.bn.apply(this.shortcut.conv.apply(x), training) : x;
    return relu(tf.add(out, skip));
  }
}

export function buildResnet18(opts: ModelOptions, rng: Rng): Model {
  checkCommonOptions('resnet18', opts);
  const pb = new ParamBuilder(rng, 'resnet18');
  const stem = scaled(64, opts.width);
  const conv1 = new Conv2d(pb, 'conv1', opts.inputShape[2], stem, { kernel: 3, padding: 1 });
  const bn1 = new BatchNorm(pb, 'bn1', stem);
  const blocks: { name: string; block: BasicBlock }[] = [];
  let inPlanes = stem;
  STAGES.forEach(({ planes, stride }, s) => {
    const outPlanes = scaled(planes, opts.width);
    for (let i = 0; i < BLOCKS_PER_STAGE; i++) {
      const name = `layer${s + 1}.${i}`;
      blocks.push({ name, block: new BasicBlock(pb, name, inPlanes, outPlanes, i === 0 ? stride : 1) });
      inPlanes = outPlanes;
    }
  });
  const linear = new Linear(pb, 'linear', inPlanes, opts.numClasses);

  return createModel({
    arch: 'resnet18',
    opts,
    tapNames: RESNET18_TAPS,
    maskTap: 'pool',
    params: pb.params(),
    body: (x, input, fwd, record) => {
      let h = bn1.applyRelu(conv1.apply(x), fwd.training);
      h = record('conv1', h);
      for (const { name, block } of blocks) {
        h = block.apply(h, fwd.training);
        h = record(name, h);
      }
      const pooled = record('pool', applyChannelMask(globalAvgPool(h), input, fwd.channelMask));
      return linear.apply(pooled);
    },
  });
}
