// Seam for kernels ibrar adds to or replaces in the wasm backend. Filled by the kernels work.
export function registerWasmKernelPatches(): string[] {
  return [];
}
