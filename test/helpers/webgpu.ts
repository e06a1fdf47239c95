// Getting the webgpu backend in a test, or a diagnostic that says why not: the optional packages
// or an adapter may be absent on a user's machine (as the native-kernel tests do without
// libdnnl). IBRAR_TEST_REQUIRE_WEBGPU=1 (CI, which installs Mesa) makes that a failure.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { initBackend, type BackendInfo } from '../../src/engine/backend';

export function webgpuPackagesMissing(): string | null {
  for (const pkg of ['webgpu', '@tensorflow/tfjs-backend-webgpu']) {
    try {
      require.resolve(pkg);
    } catch {
      return `optional package '${pkg}' is not installed`;
    }
  }
  return null;
}

/** Activates webgpu and returns its info, or reports why not and returns null (the caller returns). */
export async function webgpuIfAvailable(t: TestContext): Promise<BackendInfo | null> {
  const required = process.env.IBRAR_TEST_REQUIRE_WEBGPU === '1';
  let why = webgpuPackagesMissing();
  if (!why) {
    try {
      return await initBackend('webgpu');
    } catch (err) {
      why = (err as Error).message;
    }
  }
  assert.ok(!required, `IBRAR_TEST_REQUIRE_WEBGPU=1 but ${why}`);
  t.diagnostic(`webgpu not available (${why}); nothing to check here`);
  return null;
}
