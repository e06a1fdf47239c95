// The bad-input corpus and the one rule every case must follow: exit code 2, one clear
// message that names the file and the field or byte offset, no stack trace (unless --debug),
// nothing written (no runs/ folder appears, a run dir given to the command is unchanged).
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tempDir } from '../helpers/configs';
import { runLayout } from '../../src/runs/run-dir';
import { REPO_ROOT, contentSnapshot, hasStackTrace, runCli, snapshot, snapshotDiff } from './cli';

export interface BadCase {
  name: string;
  /** Prepare the case in `cwd` (a fresh empty folder); returns the CLI arguments. */
  setup(cwd: string): string[];
  /** The first message line must start with `ibrar: <file>: ` ... */
  file: (cwd: string) => string;
  /** ... and the rest of it must match this (the field or offset, and what was wrong). */
  expect: RegExp;
  /** A folder the command was given that must stay byte-for-byte unchanged. */
  untouched?: (cwd: string) => string;
}

/**
 * A case on a damaged copy of a good run (`from()`, known once the setup test has trained it):
 * only its `last` checkpoint is kept — with a good `best` beside it, resume would (rightly)
 * continue from `best` instead of meeting the damage — then `damage` breaks it, and the command
 * that meets it is a resume or an 8-example FGSM evaluation. The run must stay as damaged.
 */
export function damagedRunCase(
  name: string,
  from: () => string,
  damage: (run: string) => void,
  file: (run: string) => string,
  expect: RegExp,
  command: 'resume' | 'eval' = 'resume',
): BadCase {
  const runOf = (cwd: string) => path.join(cwd, 'run');
  return {
    name,
    setup: (cwd) => {
      const run = runOf(cwd);
      fs.cpSync(from(), run, { recursive: true });
      const dir = runLayout(run).checkpoints;
      for (const f of fs.readdirSync(dir)) if (f.startsWith('best.')) fs.rmSync(path.join(dir, f));
      damage(run);
      return command === 'resume' ? ['train', '--resume', run] : ['eval', '--run', run, '--attacks', 'fgsm', '--n', '8'];
    },
    file: (cwd) => file(runOf(cwd)),
    expect,
    untouched: runOf,
  };
}

export const FIXTURES = path.join(REPO_ROOT, 'test', 'fixtures', 'bad');

/** Run one case in a fresh folder and check the whole rule. Returns the first stderr line. */
export async function checkBadCase(c: BadCase, debug = false): Promise<string> {
  const cwd = tempDir('ibrar-bad-');
  const args = c.setup(cwd);
  const watched = c.untouched?.(cwd);
  const before = watched ? snapshot(watched) : null;
  const bytesBefore = watched ? contentSnapshot(watched) : null;
  const res = await runCli(debug ? [...args, '--debug'] : args, { cwd, timeoutMs: 60_000 });
  const where = `${c.name}: ibrar ${args.join(' ')}\n${res.stderr}`;
  assert.equal(res.code, 2, `exit code 2 for ${where}`);
  assert.equal(res.stdout, '', `nothing on stdout for ${where}`);
  const lines = res.stderr.split('\n').filter((l) => l !== '');
  const first = lines[0] ?? '';
  const prefix = `ibrar: ${c.file(cwd)}: `;
  assert.ok(first.startsWith(prefix), `message starts with '${prefix}' for ${where}`);
  assert.match(first.slice(prefix.length), c.expect, `message names the field/offset for ${where}`);
  assert.equal(lines.filter((l) => l.startsWith('ibrar:')).length, 1, `one message for ${where}`);
  if (!debug) {
    assert.ok(!hasStackTrace(res.stderr), `no stack trace for ${where}`);
    assert.ok(lines.every((l) => l.startsWith('ibrar:') || l.startsWith('  ')), `only the message (and indented details) for ${where}`);
  } else {
    assert.ok(hasStackTrace(res.stderr), `--debug shows the stack trace for ${where}`);
  }
  assert.ok(!fs.existsSync(path.join(cwd, 'runs')), `no runs/ folder written for ${where}`);
  if (watched && before) assert.equal(snapshotDiff(before, snapshot(watched)), '', `${watched} unchanged for ${where}`);
  if (watched && bytesBefore) assert.equal(snapshotDiff(bytesBefore, contentSnapshot(watched)), '', `${watched} byte-identical for ${where}`);
  fs.rmSync(cwd, { recursive: true, force: true });
  return first;
}
