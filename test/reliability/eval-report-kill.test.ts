// SIGKILL while `ibrar eval` writes its report (the .json, .csv and .md files, then removing
// its state file): running the same command again must leave exactly one complete report,
// equal to an uninterrupted evaluation's — not a second report under a new timestamp, nor a
// report without its .csv/.md. Every file-changing call of that final stretch is hit once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runLayout } from '../../src/runs/run-dir';
import { tempDir } from '../helpers/configs';
import { pool, runCli, runDirsOf, tinyYaml } from './cli';

/** The report files in an eval dir, by extension, and the parsed .json. */
function reports(runDir: string): { names: string[]; summary: unknown } {
  const dir = runLayout(runDir).evalDir;
  const names = fs.readdirSync(dir).filter((f) => !f.startsWith('.')).sort();
  const json = names.filter((f) => f.endsWith('.json'));
  const r = json.length === 1 ? JSON.parse(fs.readFileSync(path.join(dir, json[0]), 'utf8')) : null;
  return { names, summary: r && { n: r.n, clean: r.clean_acc, attacks: r.attacks.map((a: { attack: string; robust_acc: number }) => [a.attack, a.robust_acc]) } };
}

test('a kill while the evaluation report is written: re-running eval leaves one complete, identical report', { timeout: 120_000 }, async () => {
  const root = tempDir('ibrar-evalkill-');
  const runs = path.join(root, 'runs');
  const cfg = path.join(root, 'tiny.yaml');
  fs.writeFileSync(cfg, tinyYaml(runs, { epochs: 1 }));
  assert.equal((await runCli(['train', '--config', cfg])).code, 0);
  const [trained] = runDirsOf(runs);
  const evalArgs = (dir: string) => ['eval', '--run', dir, '--attacks', 'fgsm', '--eps', '0.1', '--n', '64', '--batch-size', '16'];

  const refDir = path.join(root, 'ref');
  fs.cpSync(trained, refDir, { recursive: true });
  const countFile = path.join(root, 'ops');
  const ref = await runCli(evalArgs(refDir), { faults: true, env: { IBRAR_FAULT_DIR: runLayout(refDir).evalDir, IBRAR_FAULT_COUNT_FILE: countFile } });
  assert.equal(ref.code, 0, ref.stderr);
  const want = reports(refDir);
  assert.equal(want.names.length, 3, `json, csv and md: ${want.names}`);
  const total = Number(fs.readFileSync(countFile, 'utf8'));
  // The last 16 calls span the state file's final write, the three report files and the removal.
  const killPoints = Array.from({ length: 16 }, (_, i) => total - 15 + i).filter((k) => k >= 1);

  const failures = await pool(killPoints, 2, async (at) => {
    const dir = path.join(root, `kill-${at}`);
    fs.cpSync(trained, dir, { recursive: true });
    const killed = await runCli(evalArgs(dir), { faults: true, env: { IBRAR_FAULT_DIR: runLayout(dir).evalDir, IBRAR_FAULT_KILL_AT: String(at) } });
    if (killed.signal !== 'SIGKILL') return `op ${at}: not killed (${killed.code})`;
    const again = await runCli(evalArgs(dir));
    if (again.code !== 0) return `op ${at}: re-run exited ${again.code}: ${again.stderr}`;
    const got = reports(dir);
    if (got.names.length !== 3) return `op ${at}: report files ${got.names.join(', ')}`;
    if (JSON.stringify(got.summary) !== JSON.stringify(want.summary)) return `op ${at}: ${JSON.stringify(got.summary)} vs ${JSON.stringify(want.summary)}`;
    const leftovers = fs.readdirSync(runLayout(dir).evalDir).filter((f) => f.startsWith('.') || f.endsWith('.tmp'));
    return leftovers.length ? `op ${at}: left ${leftovers.join(', ')}` : null;
  });
  assert.deepEqual(failures.filter(Boolean), []);
});
