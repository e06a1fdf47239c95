// The dataset registry: config `data` section → a loaded, split and subset Dataset.
// Order of operations: load files → data.splitFromTest → trainSubset / testSubset.
import * as path from 'path';
import type { DataConfig } from '../config/schema';
import { Rng } from '../engine/rng';
import { UserError } from '../errors';
import {
  CIFAR100_FORMAT,
  CIFAR100_TEST_FILES,
  CIFAR100_TRAIN_FILES,
  CIFAR10_FORMAT,
  CIFAR10_TEST_FILES,
  CIFAR10_TRAIN_FILES,
  findCifarDir,
  readCifarFiles,
  type CifarFormat,
} from './cifar';
import {
  CIFAR100_CLASSES,
  CIFAR10_CLASSES,
  FASHION_MNIST_CLASSES,
  MNIST_CLASSES,
  parseClassNamesFile,
} from './class-names';
import { exists, MAX_DATA_TEXT_BYTES, readFileOrThrow } from './files';
import { CIFAR100_HOWTO, fetchDataset, type FetchOptions } from './fetch';
import { loadIdxDataset, MissingDataError } from './mnist';
import { splitFromTest, takeSubset } from './subset';
import { readSvhnFiles, svhnDir, SVHN_EXTRA_FILE, SVHN_TEST_FILE, SVHN_TRAIN_FILE } from './svhn';
import { makeSynthetic } from './synthetic';
import { findTinyImagenetDir, listTinyTrain, listTinyVal, loadTinySplit, readTinyLayout, TINY_FOLDER } from './tiny-imagenet';
import type { Dataset, DatasetName, FetchableDataset, ImageShape, Split } from './types';

export interface DatasetInfo {
  name: DatasetName;
  numClasses: number;
  /** Image shape; for synthetic data the config decides. */
  shape: ImageShape | null;
  /** Subfolder of the data root; null for generated data. */
  folder: string | null;
  fetchable: boolean;
  description: string;
}

const INFO: DatasetInfo[] = [
  { name: 'cifar10', numClasses: 10, shape: [32, 32, 3], folder: 'cifar10', fetchable: true, description: 'CIFAR-10 binary version (data_batch_1..5.bin, test_batch.bin)' },
  { name: 'cifar100', numClasses: 100, shape: [32, 32, 3], folder: 'cifar100', fetchable: false, description: 'CIFAR-100 binary version (train.bin, test.bin), fine labels' },
  { name: 'mnist', numClasses: 10, shape: [28, 28, 1], folder: 'mnist', fetchable: true, description: 'MNIST idx files (train-*, t10k-*; .gz or not)' },
  { name: 'fashion-mnist', numClasses: 10, shape: [28, 28, 1], folder: 'fashion-mnist', fetchable: true, description: 'Fashion-MNIST idx files (train-*, t10k-*; .gz or not)' },
  { name: 'svhn', numClasses: 10, shape: [32, 32, 3], folder: 'svhn', fetchable: false, description: 'SVHN cropped digits (train_32x32.mat, test_32x32.mat, optional extra_32x32.mat)' },
  { name: 'tiny-imagenet', numClasses: 200, shape: [64, 64, 3], folder: TINY_FOLDER, fetchable: false, description: 'Tiny ImageNet (tiny-imagenet-200: wnids.txt, train/, val/), decoded once into a cache' },
  { name: 'synthetic', numClasses: 0, shape: null, folder: null, fetchable: false, description: 'seeded class prototypes + Gaussian noise (data.synthetic)' },
];

export function listDatasets(): DatasetInfo[] {
  return INFO.map((i) => ({ ...i, shape: i.shape ? ([...i.shape] as ImageShape) : null }));
}

/** data.root (relative to `cwd`), else $IBRAR_DATA, else ./data. */
export function resolveDataRoot(root?: string, env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  const r = root ?? (env.IBRAR_DATA && env.IBRAR_DATA.trim() !== '' ? env.IBRAR_DATA : 'data');
  return path.resolve(cwd, r);
}

export function fetchHint(name: DatasetName, root: string): string {
  if (name === 'cifar100') return CIFAR100_HOWTO.replace('<root>', root);
  if (name === 'svhn' || name === 'tiny-imagenet') {
    return `ibrar cannot download ${name}; \`ibrar data fetch ${name} --dir ${root}\` says where to get the official files and where to put them`;
  }
  const cmd = `Fetch them with \`ibrar data fetch ${name} --dir ${root}\` (or set data.autoFetch: true)`;
  if (name === 'fashion-mnist') {
    return `${cmd}; that needs the official server. Offline: \`apt-get install dataset-fashion-mnist\` and use /usr/share/datasets as the data root`;
  }
  return cmd;
}

interface RawData {
  train: Split;
  test: Split;
  classNames: string[];
  source: string[];
  /** When the files decide it (Tiny ImageNet: the wnids.txt lines); else the registry's count. */
  numClasses?: number;
}

async function readClassNames(file: string, expected: number, fallback: string[]): Promise<string[]> {
  if (!(await exists(file))) return fallback;
  return parseClassNamesFile((await readFileOrThrow(file, MAX_DATA_TEXT_BYTES, 'class names file')).toString('utf8'), expected) ?? fallback;
}

async function loadCifar(
  name: 'cifar10' | 'cifar100',
  root: string,
  holdout: number | undefined,
): Promise<RawData> {
  const fmt: CifarFormat = name === 'cifar10' ? CIFAR10_FORMAT : CIFAR100_FORMAT;
  const trainFiles = name === 'cifar10' ? CIFAR10_TRAIN_FILES : CIFAR100_TRAIN_FILES;
  const testFiles = name === 'cifar10' ? CIFAR10_TEST_FILES : CIFAR100_TEST_FILES;
  const { dir } = await findCifarDir(root, name, testFiles[0]);
  const needed = holdout !== undefined ? testFiles : [...trainFiles, ...testFiles];
  const missing: string[] = [];
  for (const f of needed) if (!(await exists(path.join(dir, f)))) missing.push(f);
  if (missing.length > 0) {
    throw new MissingDataError(
      `${name === 'cifar10' ? 'CIFAR-10' : 'CIFAR-100'} files missing in ${dir}: ${missing.join(', ')}. ${fetchHint(name, root)}`,
      name,
      dir,
      missing,
    );
  }
  const classNames =
    name === 'cifar10'
      ? await readClassNames(path.join(dir, 'batches.meta.txt'), 10, CIFAR10_CLASSES)
      : await readClassNames(path.join(dir, 'fine_label_names.txt'), 100, CIFAR100_CLASSES);
  const test = await readCifarFiles(testFiles.map((f) => path.join(dir, f)), fmt);
  if (holdout !== undefined) {
    const parts = splitFromTest(test, holdout, testFiles[0]);
    return {
      ...parts,
      classNames,
      source: [
        `train: images 0..${test.n - holdout - 1} of ${path.join(dir, testFiles[0])} (data.splitFromTest=${holdout})`,
        `test: images ${test.n - holdout}..${test.n - 1} of ${path.join(dir, testFiles[0])}`,
      ],
    };
  }
  const train = await readCifarFiles(trainFiles.map((f) => path.join(dir, f)), fmt);
  return {
    train,
    test,
    classNames,
    source: [`train: ${trainFiles.join(', ')} in ${dir} (${train.n} images)`, `test: ${testFiles.join(', ')} (${test.n} images)`],
  };
}

async function loadSvhn(root: string, holdout: number | undefined, extra: boolean): Promise<RawData> {
  const dir = svhnDir(root);
  const trainFiles = extra ? [SVHN_TRAIN_FILE, SVHN_EXTRA_FILE] : [SVHN_TRAIN_FILE];
  const needed = holdout !== undefined ? [SVHN_TEST_FILE] : [...trainFiles, SVHN_TEST_FILE];
  const missing: string[] = [];
  for (const f of needed) if (!(await exists(path.join(dir, f)))) missing.push(f);
  if (missing.length > 0) throw new MissingDataError(`SVHN files missing in ${dir}: ${missing.join(', ')}. ${fetchHint('svhn', root)}`, 'svhn', dir, missing);
  const test = await readSvhnFiles([path.join(dir, SVHN_TEST_FILE)]);
  const classNames = [...MNIST_CLASSES];
  if (holdout !== undefined) {
    return {
      ...splitFromTest(test, holdout, SVHN_TEST_FILE),
      classNames,
      source: [`train: images 0..${test.n - holdout - 1} of ${SVHN_TEST_FILE} in ${dir} (data.splitFromTest=${holdout})`, `test: images ${test.n - holdout}..${test.n - 1} of ${SVHN_TEST_FILE}`],
    };
  }
  const train = await readSvhnFiles(trainFiles.map((f) => path.join(dir, f)));
  return { train, test, classNames, source: [`train: ${trainFiles.join(' + ')} in ${dir} (${train.n} images)`, `test: ${SVHN_TEST_FILE} (${test.n} images)`] };
}

async function loadTinyImagenet(root: string, holdout: number | undefined, log: (msg: string) => void): Promise<RawData> {
  const dir = await findTinyImagenetDir(root);
  if (!dir) {
    const where = path.join(root, TINY_FOLDER);
    throw new MissingDataError(`Tiny ImageNet not found: no wnids.txt in ${where} or ${path.join(where, 'tiny-imagenet-200')}. ${fetchHint('tiny-imagenet', root)}`, 'tiny-imagenet', where, ['wnids.txt']);
  }
  const layout = await readTinyLayout(dir, root);
  const trainList = holdout === undefined ? await listTinyTrain(layout) : null;
  const valList = await listTinyVal(layout);
  const test = await loadTinySplit(layout, valList, { log });
  const base = { classNames: layout.classNames, numClasses: layout.wnids.length };
  if (!trainList) {
    return {
      ...base,
      ...splitFromTest(test, holdout as number, 'the Tiny ImageNet val split'),
      source: [`train: val images 0..${test.n - (holdout as number) - 1} of ${dir} (data.splitFromTest=${holdout})`, `test: the last ${holdout} val images`],
    };
  }
  const train = await loadTinySplit(layout, trainList, { log });
  return { ...base, train, test, source: [`train: ${dir}/train (${train.n} images, ${layout.wnids.length} classes)`, `test: ${dir}/val (${test.n} images)`] };
}

async function loadRaw(cfg: DataConfig, root: string, log: (msg: string) => void): Promise<RawData> {
  const name = cfg.dataset as Exclude<DatasetName, 'synthetic'>;
  const holdout = cfg.splitFromTest;
  if (name === 'cifar10' || name === 'cifar100') return loadCifar(name, root, holdout);
  if (name === 'svhn') return loadSvhn(root, holdout, cfg.svhnExtra);
  if (name === 'tiny-imagenet') return loadTinyImagenet(root, holdout, log);
  const r = await loadIdxDataset(root, name, holdout, fetchHint(name, root));
  return { ...r, classNames: name === 'mnist' ? [...MNIST_CLASSES] : [...FASHION_MNIST_CLASSES] };
}

export interface LoadOptions {
  log?: (msg: string) => void;
  /** Passed to the fetcher when data.autoFetch triggers a download. */
  fetch?: FetchOptions;
}

/** Loads the dataset a config describes; `seed` drives synthetic data and random subsets. */
export async function loadDataset(cfg: DataConfig, seed: number, opts: LoadOptions = {}): Promise<Dataset> {
  const log = opts.log ?? (() => {});
  let raw: RawData;
  let root = '';
  let numClasses: number;
  if (cfg.dataset === 'synthetic') {
    const s = cfg.synthetic;
    const gen = makeSynthetic(s, seed);
    numClasses = s.classes;
    raw = {
      train: gen.train,
      test: gen.test,
      classNames: Array.from({ length: s.classes }, (_, i) => `class_${i}`),
      source: [`synthetic ${s.height}x${s.width}x${s.channels}, ${s.classes} classes, noise ${s.noise}, seed ${seed}`],
    };
    if (cfg.splitFromTest !== undefined) {
      const parts = splitFromTest(raw.test, cfg.splitFromTest, 'the synthetic test set');
      raw = { ...raw, ...parts, source: [...raw.source, `data.splitFromTest=${cfg.splitFromTest}`] };
    }
  } else {
    const name = cfg.dataset;
    root = resolveDataRoot(cfg.root);
    try {
      raw = await loadRaw(cfg, root, log);
    } catch (err) {
      const fetchable = name === 'cifar10' || name === 'mnist' || name === 'fashion-mnist';
      if (!(err instanceof MissingDataError) || !cfg.autoFetch || !fetchable) throw err;
      // The error's own text tells how to fetch; with autoFetch on, ibrar just does it.
      log(`no ${name} files in ${err.dir} (data.autoFetch is on): fetching ${name} into ${root}`);
      await fetchDataset(name as FetchableDataset, root, { log, ...opts.fetch });
      raw = await loadRaw(cfg, root, log);
    }
    numClasses = raw.numClasses ?? (INFO.find((i) => i.name === name) as DatasetInfo).numClasses;
  }
  let { train, test } = raw;
  const source = [...raw.source];
  if (cfg.trainSubset) {
    train = takeSubset(train, cfg.trainSubset, numClasses, new Rng(seed).fork('data-subset-train'), 'data.trainSubset');
    source.push(`train subset: ${cfg.trainSubset.mode} ${cfg.trainSubset.n}`);
  }
  if (cfg.testSubset) {
    test = takeSubset(test, cfg.testSubset, numClasses, new Rng(seed).fork('data-subset-test'), 'data.testSubset');
    source.push(`test subset: ${cfg.testSubset.mode} ${cfg.testSubset.n}`);
  }
  if (train.n === 0 || test.n === 0) throw new UserError(`the ${train.n === 0 ? 'training' : 'test'} split is empty`);
  return {
    name: cfg.dataset,
    numClasses,
    classNames: raw.classNames,
    shape: [...train.shape],
    train,
    test,
    root,
    source,
  };
}
