// Golden vectors (PyTorch reference, ../shared/reference/golden) are vendored in
// test/fixtures/golden so the tests run on a clone without ../shared.
import * as fs from 'fs';
import * as path from 'path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');

export function readGolden<T = any>(name: string): T {
  return JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'golden', name), 'utf8')) as T;
}

/** The real-data folder the tests may use: $IBRAR_DATA (CI points it at its copy of the official files; a user's clone may have none). */
export function sharedDataRoot(): string | null {
  const p = process.env.IBRAR_DATA;
  return p && fs.existsSync(p) ? path.resolve(p) : null;
}

export interface Tol {
  rtol: number;
  atol: number;
}

/** Golden pass rule: |got − want| ≤ atol + rtol·|want| elementwise. Returns the worst violation ratio. */
export function worstRatio(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} != ${want.length}`);
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    const r = Math.abs(got[i] - want[i]) / (tol.atol + tol.rtol * Math.abs(want[i]));
    if (!(r <= worst)) worst = Number.isNaN(r) ? Infinity : Math.max(worst, r);
  }
  return worst;
}

export function flat(x: unknown): number[] {
  return Array.isArray(x) ? (x as unknown[]).flatMap(flat) : [x as number];
}
