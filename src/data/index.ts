// Public surface of the data layer.
export type { AugmentOptions, Batch, Dataset, DatasetName, FetchableDataset, ImageShape, ProgressFn, Split } from './types';
export { listDatasets, loadDataset, resolveDataRoot, fetchHint, type DatasetInfo, type LoadOptions } from './registry';
export { trainBatches, testBatches, stepsPerEpoch, epochPlan, type TrainBatchOptions, type EpochPlan } from './batches';
export { toTensors, type BatchTensors } from './tensors';
export { fetchDataset, FETCHABLE, type FetchOptions, type FetchResult } from './fetch';
export { verifyDataset, type VerifyReport, type VerifyFile, type VerifySplit, type FileStatus } from './verify';
export { countPerClass, takeSubset, splitFromTest, sliceSplit, gatherSplit } from './subset';
export { makeSynthetic, type SyntheticSpec } from './synthetic';
export { MissingDataError } from './mnist';
export { BYTE_TO_UNIT } from './augment';
