// Dataset name lists for the CLI's choices, kept free of loader imports so that `--help`
// and argument parsing do not load the fetchers and decoders.
import type { DatasetName, FetchableDataset } from './types';

/** Datasets `ibrar data fetch` can download or rebuild. */
export const FETCHABLE: readonly FetchableDataset[] = ['cifar10', 'mnist', 'fashion-mnist'];

/** Datasets ibrar cannot download: `ibrar data fetch` says where to get them (and exits 2). */
export const MANUAL_DATASETS = ['cifar100', 'svhn', 'tiny-imagenet'] as const;

/** Datasets `ibrar data verify` checks (every one with files on disk). */
export const VERIFIABLE: readonly DatasetName[] = ['cifar10', 'cifar100', 'mnist', 'fashion-mnist', 'svhn', 'tiny-imagenet'];
