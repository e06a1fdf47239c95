// A small CPU-friendly CNN for smoke tests and quick runs (not in the paper):
//   conv1 3×3 32 → BN → ReLU → pool 2×2    (tap conv1)
//   conv2 3×3 64 → BN → ReLU → pool 2×2    (tap conv2)
//   conv3 3×3 128 → BN → ReLU → global avg (tap conv3, the channel-mask tap: [N, 128])
//   fc1 Linear(128, 128) → ReLU            (tap fc1)
//   linear Linear(128, classes)
// `width` scales every size (round, ≥ 1). Convs are bias-free (BatchNorm follows). Pools are
// skipped once the map is smaller than 2×2, so any input size works (28×28 → 14 → 7,
// 32×32 → 16 → 8).
// Parameter names: conv{1,2,3}.weight, bn{1,2,3}.{weight,bias,running_mean,running_var},
// fc1.weight|bias, linear.weight|bias.
import type { Rng } from '../engine/rng';
import type { Model, ModelOptions } from './types';
import { BatchNorm, Conv2d, Linear, applyChannelMask, canPool2, globalAvgPool, maxPool2, relu } from './layers';
import { ParamBuilder, scaled } from './params';
import { checkCommonOptions, createModel } from './model';

import { SMALL_CNN_TAPS } from '../config/facts';

/** Tap names (the table lives in config/facts.ts, where config validation reads it too). */
export { SMALL_CNN_TAPS };

export function buildSmallCnn(opts: ModelOptions, rng: Rng): Model {
  checkCommonOptions('small-cnn', opts);
  const pb = new ParamBuilder(rng, 'small-cnn');
  const widths = [32, 64, 128].map((c) => scaled(c, opts.width));
  let inC = opts.inputShape[2];
  const convs = widths.map((outC, i) => {
    const conv = new Conv2d(pb, `conv${i + 1}`, inC, outC, { kernel: 3, padding: 1 });
    const bn = new BatchNorm(pb, `bn${i + 1}`, outC);
    inC = outC;
    return { conv, bn };
  });
  const hidden = scaled(128, opts.width);
  const fc1 = new Linear(pb, 'fc1', inC, hidden);
  const linear = new Linear(pb, 'linear', hidden, opts.numClasses);

  return createModel({
    arch: 'small-cnn',
    opts,
    tapNames: SMALL_CNN_TAPS,
    maskTap: 'conv3',
    params: pb.params(),
    body: (x, input, fwd, record) => {
      let h = x;
      for (let i = 0; i < 2; i++) {
        h = convs[i].bn.applyRelu(convs[i].conv.apply(h), fwd.training);
        if (canPool2(h)) h = maxPool2(h);
        h = record(`conv${i + 1}`, h);
      }
      h = convs[2].bn.applyRelu(convs[2].conv.apply(h), fwd.training);
      const pooled = record('conv3', applyChannelMask(globalAvgPool(h), input, fwd.channelMask));
      const f = record('fc1', relu(fc1.apply(pooled)));
      return linear.apply(f);
    },
  });
}
