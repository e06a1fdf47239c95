import type { CommandModule } from 'yargs';
import { defaultContext } from './context';
import type { BackendName } from '../engine/backends';

export const infoCommand: CommandModule<object, { backend: string; json: boolean; debug: boolean }> = {
  command: 'info',
  describe: 'show the compute backend in use, tfjs version, threads, SIMD and patched kernels',
  builder: (y) =>
    y
      .option('backend', { type: 'string', default: 'auto', choices: ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] })
      .option('json', { type: 'boolean', default: false }) as never,
  handler: async (args) => {
    const ctx = defaultContext(args.debug);
    const { initBackend } = await import('../engine/backend');
    const info = await initBackend(args.backend as BackendName);
    const os = await import('os');
    const report = {
      ...info,
      node: process.version,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model ?? 'unknown',
      ibrar: require('../../../package.json').version as string,
    };
    if (args.json) {
      ctx.out.write(JSON.stringify(report, null, 2) + '\n');
      return;
    }
    const lines = [
      `ibrar ${report.ibrar} on node ${report.node}, ${report.cpus} × ${report.cpuModel}`,
      `backend: ${info.active} (requested ${info.requested}, from ${info.provider}), tfjs ${info.tfjsVersion}`,
    ];
    if (info.active === 'wasm') lines.push(`wasm: SIMD ${info.simd ? 'yes' : 'no'}, threads ${info.threads ? 'yes' : 'no (single-threaded in Node)'}`);
    if (info.native) {
      lines.push(
        info.native.loaded
          ? `native kernels (oneDNN): ${info.native.kernels.join(', ')}${info.native.runtime ? ` [${info.native.runtime}]` : ''}`
          : `native kernels: not loaded (${info.native.reason ?? 'unknown'}); using the wasm kernels`,
      );
    }
    lines.push(`kernels patched or native: ${info.patchedKernels.length ? info.patchedKernels.join(', ') : 'none'}`);
    for (const s of info.skipped) lines.push(`skipped: ${s}`);
    ctx.out.write(lines.join('\n') + '\n');
  },
};
