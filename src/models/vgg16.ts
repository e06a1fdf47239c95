// VGG16 of the IB-RAR code (`model/vgg16.py`, docs/method.md §0): five conv blocks of
// conv 3×3 pad 1 (with bias) → BatchNorm2d → ReLU, each block ending in MaxPool 2×2/2;
// global average pool; fc1 Linear(512, 4096) → BatchNorm1d → ReLU; fc2 likewise;
// Linear(4096, classes). `width` scales every conv and the FC size (round, ≥ 1).
//
// Parameter names are the state_dict keys of the reference PyTorch module, so an exported
// checkpoint loads into it with load_state_dict(strict=False) (no num_batches_tracked):
//   layer{b}.{j}.0.weight|bias                 conv j of block b (b = 1..5, j = 0..)
//   layer{b}.{j}.1.weight|bias|running_mean|running_var   its BatchNorm2d
//   layer6.0.* / layer6.1.*                    fc1 Linear / BatchNorm1d
//   layer7.0.* / layer7.1.*                    fc2 Linear / BatchNorm1d
//   layer8.weight|bias                         classifier
// Taps (post-ReLU, conv blocks post-pool): block1 … block5, fc1, fc2. The channel mask (Eq. 3)
// multiplies block5's output; the masked tensor is tap block5 and feeds the classifier.
//
// Small inputs: a 2×2 pool is skipped when the feature map is already smaller than 2×2
// (PyTorch would fail there). 32×32 inputs pool five times (block5 1×1); 28×28 (MNIST) gives
// 14, 7, 3, 1 and block5 stays 1×1 unpooled.
import type { Rng } from '../engine/rng';
import type { Model, ModelOptions } from './types';
import { BatchNorm, Conv2d, Linear, applyChannelMask, canPool2, globalAvgPool, maxPool2, relu } from './layers';
import { ParamBuilder, scaled } from './params';
import { checkCommonOptions, createModel } from './model';

const BLOCKS = [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]];
const FC = 4096;

import { VGG16_TAPS } from '../config/facts';

/** Tap names (the table lives in config/facts.ts, where config validation reads it too). */
export { VGG16_TAPS };

export function buildVgg16(opts: ModelOptions, rng: Rng): Model {
  checkCommonOptions('vgg16', opts);
  const pb = new ParamBuilder(rng, 'vgg16');
  const blocks: { conv: Conv2d; bn: BatchNorm }[][] = [];
  let inC = opts.inputShape[2];
  BLOCKS.forEach((widths, b) => {
    blocks.push(
      widths.map((w, j) => {
        const outC = scaled(w, opts.width);
        const prefix = `layer${b + 1}.${j}`;
        const conv = new Conv2d(pb, `${prefix}.0`, inC, outC, { kernel: 3, padding: 1, bias: true });
        const bn = new BatchNorm(pb, `${prefix}.1`, outC);
        inC = outC;
        return { conv, bn };
      }),
    );
  });
  const fcSize = scaled(FC, opts.width);
  const fc1 = new Linear(pb, 'layer6.0', inC, fcSize);
  const bn1 = new BatchNorm(pb, 'layer6.1', fcSize);
  const fc2 = new Linear(pb, 'layer7.0', fcSize, fcSize);
  const bn2 = new BatchNorm(pb, 'layer7.1', fcSize);
  const classifier = new Linear(pb, 'layer8', fcSize, opts.numClasses);

  return createModel({
    arch: 'vgg16',
    opts,
    tapNames: VGG16_TAPS,
    maskTap: 'block5',
    params: pb.params(),
    body: (x, input, fwd, record) => {
      const training = fwd.training;
      let h = x;
      blocks.forEach((layers, b) => {
        for (const { conv, bn } of layers) h = bn.applyRelu(conv.apply(h), training);
        if (canPool2(h)) h = maxPool2(h);
        if (b === blocks.length - 1) h = applyChannelMask(h, input, fwd.channelMask);
        h = record(`block${b + 1}`, h);
      });
      let f = record('fc1', bn1.applyRelu(fc1.apply(globalAvgPool(h)), training));
      f = record('fc2', bn2.applyRelu(fc2.apply(f), training));
      return classifier.apply(f);
    },
  });
}
