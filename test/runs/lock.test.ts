import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { acquireRunLock } from '../../src/runs/lock';
import { runLayout } from '../../src/runs/run-dir';
import { UserError } from '../../src/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-lock-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const LOCK_JS = path.join(__dirname, '..', '..', 'src', 'runs', 'lock.js');

let n = 0;
function runDir(): string {
  const d = path.join(tmp, `run${n++}`);
  fs.mkdirSync(d);
  return d;
}

/** Runs `body` in a fresh node process with `acquireRunLock` in scope; returns its output. */
function child(body: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['-e', `const { acquireRunLock } = require(${JSON.stringify(LOCK_JS)});\n${body}`]);
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

test('the lock file holds pid and host; release removes it', () => {
  const dir = runDir();
  const lock = acquireRunLock(dir);
  assert.equal(lock.path, runLayout(dir).lock);
  const info = JSON.parse(fs.readFileSync(lock.path, 'utf8'));
  assert.equal(info.pid, process.pid);
  assert.equal(info.host, os.hostname());
  lock.release();
  assert.equal(fs.existsSync(lock.path), false);
  lock.release(); // idempotent
  // Accepts a RunLayout too.
  const again = acquireRunLock(runLayout(dir));
  again.release();
});

test('a second process cannot take a held lock, and is told who holds it', () => {
  const dir = runDir();
  const lock = acquireRunLock(dir);
  const r = child(`try { acquireRunLock(${JSON.stringify(dir)}); console.log('ACQUIRED'); } catch (e) { console.log(e.name + ': ' + e.message); }`);
  assert.doesNotMatch(r.stdout, /ACQUIRED/);
  assert.match(r.stdout, new RegExp(`UserError: .*\\.lock: the run directory is locked by pid ${process.pid} on this host`));
  assert.match(r.stdout, /another ibrar process is using it/);
  // The same process asking twice is refused as well.
  assert.throws(() => acquireRunLock(dir), (e: unknown) => e instanceof UserError && /locked by this process/.test(e.message));
  lock.release();
});

test('a stale lock from a dead pid on this host is taken over', () => {
  const dir = runDir();
  const r = child(`const l = acquireRunLock(${JSON.stringify(dir)}); process.stdout.write(String(process.pid)); process.kill(process.pid, 'SIGKILL');`);
  const deadPid = Number(r.stdout);
  assert.ok(deadPid > 0);
  const file = runLayout(dir).lock;
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, deadPid, 'SIGKILL left the lock behind');
  const lock = acquireRunLock(dir);
  assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).pid, process.pid);
  lock.release();
});

test('a lock from another host is never broken automatically', () => {
  const dir = runDir();
  const file = runLayout(dir).lock;
  fs.writeFileSync(file, JSON.stringify({ pid: 1, host: 'elsewhere.example', token: 'x', createdAt: '2024-01-01T00:00:00Z' }));
  assert.throws(
    () => acquireRunLock(dir),
    (e: unknown) => e instanceof UserError && /pid 1 on host elsewhere\.example/.test(e.message) && /delete this lock file/.test(e.message),
  );
  assert.ok(fs.existsSync(file));
});

test('release does not delete a lock that now belongs to someone else', () => {
  const dir = runDir();
  const lock = acquireRunLock(dir);
  const foreign = JSON.stringify({ pid: 1, host: 'elsewhere.example', token: 'other', createdAt: '' });
  fs.writeFileSync(lock.path, foreign);
  lock.release();
  assert.equal(fs.readFileSync(lock.path, 'utf8'), foreign);
  fs.rmSync(lock.path);
});

test('the lock is released when the process exits normally or via process.exit()', () => {
  const dir = runDir();
  const r = child(`acquireRunLock(${JSON.stringify(dir)}); process.exit(3);`);
  assert.equal(r.status, 3);
  assert.equal(fs.existsSync(runLayout(dir).lock), false);
});
