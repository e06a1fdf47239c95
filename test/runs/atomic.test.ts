import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { spawnSync } from 'child_process';
import { removeStaleTempFiles, tempFileOwner, tempPathFor, writeFileAtomic, writeJsonAtomic } from '../../src/runs/atomic';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-atomic-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('temp names sit next to the target and carry the pid', () => {
  const t = tempPathFor(path.join(tmp, 'a.json'));
  assert.equal(path.dirname(t), tmp);
  assert.match(path.basename(t), new RegExp(`^\\.a\\.json\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`));
  assert.deepEqual(tempFileOwner(path.basename(t)), { target: 'a.json', pid: process.pid });
  assert.equal(tempFileOwner('a.json'), null);
});

test('writeFileAtomic replaces the file and leaves no temp file', () => {
  const f = path.join(tmp, 'x.bin');
  writeFileAtomic(f, 'first');
  writeFileAtomic(f, new Uint8Array([1, 2, 3]));
  assert.deepEqual([...fs.readFileSync(f)], [1, 2, 3]);
  writeJsonAtomic(path.join(tmp, 'y.json'), { a: [1, 2] });
  assert.equal(fs.readFileSync(path.join(tmp, 'y.json'), 'utf8'), '{\n  "a": [\n    1,\n    2\n  ]\n}\n');
  assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp')), []);
});

test('a failed rename leaves the old file and no temp file', () => {
  const dirTarget = path.join(tmp, 'is-a-dir');
  fs.mkdirSync(path.join(dirTarget, 'child'), { recursive: true });
  assert.throws(() => writeFileAtomic(dirTarget, 'x'));
  assert.ok(fs.statSync(dirTarget).isDirectory());
  assert.deepEqual(fs.readdirSync(tmp).filter((n) => n.endsWith('.tmp')), []);
  assert.throws(() => writeFileAtomic(path.join(tmp, 'missing-dir', 'f'), 'x'), /ENOENT/);
});

test('removeStaleTempFiles removes only dead processes\' temp files', () => {
  const d = path.join(tmp, 'stale');
  fs.mkdirSync(d);
  const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString());
  const mine = path.basename(tempPathFor(path.join(d, 'ok.json')));
  fs.writeFileSync(path.join(d, mine), '');
  fs.writeFileSync(path.join(d, `.ok.json.${dead}.00112233.tmp`), '');
  fs.writeFileSync(path.join(d, `.other.json.${dead}.00112233.tmp`), '');
  fs.writeFileSync(path.join(d, 'ok.json'), '{}');
  assert.deepEqual(removeStaleTempFiles(d, (t) => t.startsWith('ok.')), [`.ok.json.${dead}.00112233.tmp`]);
  assert.deepEqual(fs.readdirSync(d).sort(), [mine, `.other.json.${dead}.00112233.tmp`, 'ok.json'].sort());
});
