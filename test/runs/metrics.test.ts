import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { MetricsWriter, csvField, parseCsv, readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { UserError } from '../../src/errors';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ibrar-metrics-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function runDir(): string {
  const d = path.join(tmp, `run${n++}`);
  fs.mkdirSync(d);
  return d;
}
const csvOf = (d: string) => fs.readFileSync(runLayout(d).metricsCsv, 'utf8');
const jsonlOf = (d: string) => fs.readFileSync(runLayout(d).metricsJsonl, 'utf8');

test('header written once, columns fixed at the first record: given order, then its other keys', () => {
  const d = runDir();
  const w = MetricsWriter.open(d, { columns: ['epoch', 'loss', 'test_acc'] });
  w.append({ epoch: 1, extra: 'a', loss: 0.5, test_acc: 0.25 });
  w.append({ epoch: 2, loss: 0.25, test_acc: 0.5, later: 7 }); // `later` is JSONL-only; `extra` missing → empty
  w.close();
  assert.equal(csvOf(d), 'epoch,loss,test_acc,extra\n1,0.5,0.25,a\n2,0.25,0.5,\n');
  assert.equal(jsonlOf(d), '{"epoch":1,"extra":"a","loss":0.5,"test_acc":0.25}\n{"epoch":2,"loss":0.25,"test_acc":0.5,"later":7}\n');
  assert.deepEqual(readMetrics(d), [
    { epoch: 1, extra: 'a', loss: 0.5, test_acc: 0.25 },
    { epoch: 2, loss: 0.25, test_acc: 0.5, later: 7 },
  ]);

  // Re-opening (continuing) keeps the header from the file, not a new column list.
  const w2 = MetricsWriter.open(d, { columns: ['zzz'] });
  assert.deepEqual(w2.csvColumns, ['epoch', 'loss', 'test_acc', 'extra']);
  w2.append({ epoch: 3, loss: 0.125, test_acc: 0.75 });
  assert.equal(csvOf(d).split('\n').filter((l) => l.startsWith('epoch,')).length, 1);
  assert.equal(readMetrics(d).length, 3);
});

test('CSV escaping: commas, quotes, newlines; non-finite numbers; round trip through parseCsv', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(NaN), 'NaN');
  assert.equal(csvField(-Infinity), '-Infinity');
  assert.equal(csvField(null), '');
  assert.equal(csvField(true), 'true');
  const d = runDir();
  const w = MetricsWriter.open(d, { columns: ['epoch', 'name', 'loss'] });
  const nasty = 'pgd, "eps=8/255"\r\nline2';
  w.append({ epoch: 1, name: nasty, loss: NaN });
  assert.deepEqual(parseCsv(csvOf(d)), [
    ['epoch', 'name', 'loss'],
    ['1', nasty, 'NaN'],
  ]);
  assert.deepEqual(readMetrics(d), [{ epoch: 1, name: nasty, loss: null }], 'NaN is null in JSONL');
});

test('resume: truncateAfterEpoch keeps epochs ≤ e in both files, then appends without duplicates', () => {
  const d = runDir();
  const w = MetricsWriter.open(d, { columns: ['epoch', 'acc'] });
  for (let e = 1; e <= 5; e++) w.append({ epoch: e, acc: e / 10 });
  w.append({ phase: 'final-eval', acc: 0.9 }); // no epoch: dropped by a truncation
  // The run was killed after epoch 5 but its last checkpoint is epoch 3: resume from 3.
  const r = MetricsWriter.open(d, { columns: ['epoch', 'acc'], truncateAfterEpoch: 3 });
  assert.deepEqual(readMetrics(d).map((x) => x.epoch), [1, 2, 3]);
  assert.equal(csvOf(d), 'epoch,acc\n1,0.1\n2,0.2\n3,0.3\n');
  r.append({ epoch: 4, acc: 0.44 });
  assert.equal(csvOf(d), 'epoch,acc\n1,0.1\n2,0.2\n3,0.3\n4,0.44\n');
  assert.deepEqual(readMetrics(d).map((x) => x.acc), [0.1, 0.2, 0.3, 0.44]);
  assert.deepEqual(fs.readdirSync(d).filter((f) => f.endsWith('.tmp')), []);
  // Resuming from scratch (epoch 0) empties the rows but keeps the header.
  MetricsWriter.open(d, { truncateAfterEpoch: 0 });
  assert.equal(csvOf(d), 'epoch,acc\n');
  assert.equal(jsonlOf(d), '');
});

test('a row cut short by a kill is dropped and the CSV is rebuilt to match the JSONL', () => {
  const d = runDir();
  const w = MetricsWriter.open(d, { columns: ['epoch', 'acc'] });
  w.append({ epoch: 1, acc: 0.5 });
  w.append({ epoch: 2, acc: 0.6 });
  // Killed while writing epoch 3: half a JSON line, no CSV row.
  fs.appendFileSync(runLayout(d).metricsJsonl, '{"epoch":3,"ac');
  assert.deepEqual(readMetrics(d).map((r) => r.epoch), [1, 2], 'readMetrics ignores an unfinished last line');
  const r = MetricsWriter.open(d);
  assert.equal(jsonlOf(d), '{"epoch":1,"acc":0.5}\n{"epoch":2,"acc":0.6}\n');
  r.append({ epoch: 3, acc: 0.7 });
  assert.equal(csvOf(d), 'epoch,acc\n1,0.5\n2,0.6\n3,0.7\n');
  // Killed between the JSONL line and its CSV row: the CSV is regenerated on open.
  fs.appendFileSync(runLayout(d).metricsJsonl, '{"epoch":4,"acc":0.8}\n');
  MetricsWriter.open(d);
  assert.equal(csvOf(d), 'epoch,acc\n1,0.5\n2,0.6\n3,0.7\n4,0.8\n');
});

test('a corrupt line in the middle of metrics.jsonl is a UserError naming the line', () => {
  const d = runDir();
  fs.writeFileSync(runLayout(d).metricsJsonl, '{"epoch":1}\nnot json\n{"epoch":2}\n');
  assert.throws(
    () => readMetrics(d),
    (e: unknown) => e instanceof UserError && e.where === 'line 2' && e.file === runLayout(d).metricsJsonl,
  );
  assert.deepEqual(readMetrics(runDir()), []);
});
