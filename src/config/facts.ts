// Facts about the datasets and architectures that config validation needs without loading
// either (the config sits below data/ and models/ and must not import them): the official
// split sizes and image shapes, each architecture's tap names, and the width of the layer the
// channel mask multiplies. The models take their tap tables from here, so there is one list.
// Dependency-free on purpose.

export interface DatasetFacts {
  /** Image shape [height, width, channels]. */
  shape: readonly [number, number, number];
  /** Official training and test split sizes (Tiny ImageNet: train and val). */
  train: number;
  test: number;
  /** SVHN's optional extra_32x32.mat (data.svhnExtra), appended to the training split. */
  extra?: number;
}

/** The released datasets; `synthetic` takes its shape and sizes from data.synthetic. */
export const DATASET_FACTS: Readonly<Record<'cifar10' | 'cifar100' | 'mnist' | 'fashion-mnist' | 'svhn' | 'tiny-imagenet', DatasetFacts>> = {
  cifar10: { shape: [32, 32, 3], train: 50000, test: 10000 },
  cifar100: { shape: [32, 32, 3], train: 50000, test: 10000 },
  mnist: { shape: [28, 28, 1], train: 60000, test: 10000 },
  'fashion-mnist': { shape: [28, 28, 1], train: 60000, test: 10000 },
  svhn: { shape: [32, 32, 3], train: 73257, test: 26032, extra: 531131 },
  'tiny-imagenet': { shape: [64, 64, 3], train: 100000, test: 10000 },
};

export const SMALL_CNN_TAPS = ['conv1', 'conv2', 'conv3', 'fc1'] as const;
export const VGG16_TAPS = ['block1', 'block2', 'block3', 'block4', 'block5', 'fc1', 'fc2'] as const;
export const RESNET18_TAPS = ['conv1', 'layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1', 'layer4.0', 'layer4.1', 'pool'] as const;

/** WRN blocks per group for a depth of 6n+4 (n ≥ 1); null for any other depth. */
export function wrnBlocks(depth: number): number | null {
  return Number.isInteger(depth) && depth >= 10 && (depth - 4) % 6 === 0 ? (depth - 4) / 6 : null;
}

/** WRN's taps for a valid depth: conv1, layer{1,2,3}.{0..n-1}, pool. */
export function wrnTaps(n: number): string[] {
  const blocks = [1, 2, 3].flatMap((g) => Array.from({ length: n }, (_, i) => `layer${g}.${i}`));
  return ['conv1', ...blocks, 'pool'];
}

/** A channel count scaled by model.width (round, at least 1), as every scaled model builds it. */
export function scaledChannels(channels: number, width: number): number {
  return Math.max(1, Math.round(channels * width));
}

export interface ArchFacts {
  taps: readonly string[];
  /** The tap the channel mask multiplies and its channel count. */
  maskTap: string;
  maskChannels: number;
}

/** Taps and mask width of an architecture as configured; null for an invalid WRN depth. */
export function archFacts(model: { arch: string; width: number; depth: number; widen: number }): ArchFacts | null {
  switch (model.arch) {
    case 'small-cnn':
      return { taps: SMALL_CNN_TAPS, maskTap: 'conv3', maskChannels: scaledChannels(128, model.width) };
    case 'vgg16':
      return { taps: VGG16_TAPS, maskTap: 'block5', maskChannels: scaledChannels(512, model.width) };
    case 'resnet18':
      return { taps: RESNET18_TAPS, maskTap: 'pool', maskChannels: scaledChannels(512, model.width) };
    case 'wrn': {
      const n = wrnBlocks(model.depth);
      return n === null ? null : { taps: wrnTaps(n), maskTap: `layer2.${n - 1}`, maskChannels: 32 * model.widen };
    }
    default:
      return null;
  }
}
