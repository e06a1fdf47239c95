// Information-bottleneck math of IB-RAR: HSIC estimators (docs/method.md §1.1), the IB
// regularizer of Eq. (1)/(2) and the feature-channel mask of Eq. (3).
export * from './hsic';
export * from './regularizer';
export * from './mask';
export { centreRight, type CentredKernel } from './kernels';
