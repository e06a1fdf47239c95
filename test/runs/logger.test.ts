import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { createRunLogger } from '../../src/runs/logger';
import { runLayout } from '../../src/runs/run-dir';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-log-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function lines(file: string): Array<Record<string, unknown>> {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('JSON lines at the chosen level, written synchronously, appended on reopen', async () => {
  const dir = path.join(tmp, 'run');
  const layout = runLayout(dir); // the folder does not exist yet: created on open
  const log = createRunLogger(layout, { level: 'info', base: { run: 'r1' } });
  log.debug('hidden');
  log.info({ epoch: 1, acc: 0.5 }, 'epoch done');
  // Synchronous destination: on disk before close.
  const now = lines(layout.log);
  assert.equal(now.length, 1);
  assert.equal(now[0].msg, 'epoch done');
  assert.equal(now[0].level, 30);
  assert.equal(now[0].epoch, 1);
  assert.equal(now[0].run, 'r1');
  assert.equal(now[0].pid, process.pid);
  assert.match(String(now[0].time), /^\d{4}-\d{2}-\d{2}T/);
  await log.close();
  const again = createRunLogger(layout.log, { level: 'debug' });
  again.debug('shown');
  await again.close();
  assert.deepEqual(lines(layout.log).map((l) => l.msg), ['epoch done', 'shown']);
});

test('nothing is lost when the process exits right after logging', () => {
  const file = path.join(tmp, 'exit', 'log.jsonl');
  const mod = path.join(__dirname, '..', '..', 'src', 'runs', 'logger.js');
  const r = spawnSync(process.execPath, [
    '-e',
    `const { createRunLogger } = require(${JSON.stringify(mod)});
     const log = createRunLogger(${JSON.stringify(file)});
     for (let i = 0; i < 200; i++) log.info({ i }, 'line');
     log.fatal('bye');
     process.exit(1);`,
  ]);
  assert.equal(r.status, 1);
  const got = lines(file);
  assert.equal(got.length, 201);
  assert.equal(got[200].msg, 'bye');
});
