// Backend names, kept free of any tfjs import so configs and --help load fast.
export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
