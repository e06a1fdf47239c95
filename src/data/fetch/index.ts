// `ibrar data fetch <name> --dir <root>`: writes `<root>/<name>/` atomically.
import * as path from 'path';
import { UserError } from '../../errors';
import { FETCHABLE, MANUAL_DATASETS } from '../names';
import { SVHN_HOWTO } from '../svhn';
import { TINY_IMAGENET_HOWTO } from '../tiny-imagenet';
import type { FetchableDataset } from '../types';
import { fetchCifar10, type FetchOptions, type FetchResult } from './cifar10';
import { fetchFashionMnist, fetchMnist } from './mnist';

export type { FetchOptions, FetchResult } from './cifar10';

export { FETCHABLE, MANUAL_DATASETS } from '../names';

export const CIFAR100_HOWTO =
  'CIFAR-100 cannot be fetched by ibrar: download https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz ' +
  'and put its train.bin and test.bin (and fine_label_names.txt) into <root>/cifar100/';

export async function fetchDataset(name: FetchableDataset, dir: string, opts: FetchOptions = {}): Promise<FetchResult> {
  const root = path.resolve(dir);
  switch (name) {
    case 'cifar10':
      return fetchCifar10(root, opts);
    case 'mnist':
      return fetchMnist(root, opts);
    case 'fashion-mnist':
      return fetchFashionMnist(root, opts);
    default: {
      const n = name as string;
      if (n === 'cifar100') throw new UserError(CIFAR100_HOWTO.replace('<root>', root));
      if (n === 'svhn') throw new UserError(SVHN_HOWTO.replace('<root>', root));
      if (n === 'tiny-imagenet') throw new UserError(TINY_IMAGENET_HOWTO.replaceAll('<root>', root));
      throw new UserError(`cannot fetch "${n}": expected one of ${[...FETCHABLE, ...MANUAL_DATASETS].join(', ')}`);
    }
  }
}
