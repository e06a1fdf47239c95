// Which implementation each native kernel uses. 'auto' is what was measured fastest with
// bench/native-kernels.ts on a 2-core AVX2 EPYC: convolutions on oneDNN's convolution
// primitives for feature maps of 16x16 and up (and the RGB input layer), im2col + oneDNN
// sgemm below that (native/src/conv.cc, resolve()); matrix products on oneDNN's matmul
// primitive. The OpenBLAS engines (when built) and 'dnnl-blocked' exist for benchmarking.
// Environment overrides: IBRAR_NATIVE_CONV, IBRAR_NATIVE_MATMUL.
export const CONV_ENGINES = ['auto', 'dnnl', 'gemm-openblas', 'gemm-dnnl', 'dnnl-blocked'] as const;
export type ConvEngine = (typeof CONV_ENGINES)[number];
export const MATMUL_ENGINES = ['auto', 'dnnl', 'openblas', 'dnnl-gemm'] as const;
export type MatMulEngine = (typeof MATMUL_ENGINES)[number];

/** Engine codes of native/src/kernels.h (ConvEngine, MatMulEngine): the index in the lists above. */
export function convEngineCode(): number {
  return CONV_ENGINES.indexOf(convEngine);
}
export function matMulEngineCode(): number {
  return MATMUL_ENGINES.indexOf(matMulEngine);
}

function fromEnv<T extends string>(name: string, allowed: readonly T[]): T {
  const v = process.env[name];
  return v !== undefined && (allowed as readonly string[]).includes(v) ? (v as T) : allowed[0];
}

let convEngine: ConvEngine = fromEnv('IBRAR_NATIVE_CONV', CONV_ENGINES);
let matMulEngine: MatMulEngine = fromEnv('IBRAR_NATIVE_MATMUL', MATMUL_ENGINES);

export function setNativeConvEngine(e: ConvEngine): void {
  convEngine = e;
}
export function setNativeMatMulEngine(e: MatMulEngine): void {
  matMulEngine = e;
}
