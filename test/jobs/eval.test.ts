import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import { train } from '../../src/jobs/train';
import { evaluateRun, attackParams } from '../../src/jobs/eval';
import { formatEps } from '../../src/report/eval-tables';
import { confusionTendency } from '../../src/report/confusion';
import { UserError } from '../../src/errors';
import { tinyConfig } from '../helpers/configs';

async function trainedRun(): Promise<string> {
  const res = await train({ cfg: tinyConfig({ train: { epochs: 3 } }) });
  assert.ok(res.records[2].test_acc > 0.9);
  return res.runDir;
}

test('eval: FGSM with ε = 0 leaves accuracy unchanged, PGD with a large ε drives it to ~0, files written', async () => {
  const runDir = await trainedRun();
  const base = { runDir, checkpoint: 'last', n: 96, batchSize: 32, seed: 0 };
  const zero = await evaluateRun({ ...base, attacks: ['fgsm'], eps: 0 });
  assert.ok(zero.report);
  assert.equal(zero.report.attacks[0].robust_acc, zero.report.clean_acc);
  assert.ok(zero.report.clean_acc > 0.9);

  const big = await evaluateRun({ ...base, attacks: ['fgsm', 'pgd'], eps: 0.5, steps: 5 });
  const r = big.report!;
  const pgd = r.attacks.find((a) => a.attack === 'pgd')!;
  assert.ok(pgd.robust_acc <= 0.05, `PGD ε=0.5 accuracy ${pgd.robust_acc}`);
  assert.ok(r.worst_case_acc <= Math.min(...r.attacks.map((a) => a.robust_acc)));
  assert.equal(r.n, 96);
  assert.equal(r.eps_str, '1/2');
  assert.equal(pgd.params.steps, 5);
  assert.ok(Math.abs((pgd.params.eps as number) - 0.5) < 1e-12);
  assert.equal(r.confusion.length, 2);
  for (const f of big.files) assert.ok(fs.statSync(f).size > 0, f);
  const csv = fs.readFileSync(big.files[1], 'utf8').trim().split('\n');
  assert.equal(csv.length, 5, 'header, clean, two attacks, worst case');
});

test('eval resumes from its state file and ends with the same table as an uninterrupted run', async () => {
  const runDir = await trainedRun();
  const req = { runDir, checkpoint: 'best', attacks: ['pgd', 'nifgsm'], eps: 0.1, steps: 3, n: 128, batchSize: 32, seed: 5 };
  const full = await evaluateRun(req);
  let batches = 0;
  // `fresh`: the identical finished evaluation above would otherwise be reused as it is.
  const cut = await evaluateRun(req, { fresh: true, shouldStop: () => batches >= 2, progress: { onBatch: () => void batches++ } });
  assert.equal(cut.report, null, 'interrupted after 2 of 4 batches');
  assert.ok(cut.interrupted);
  let resumedFrom = -1;
  const resumed = await evaluateRun(req, { progress: { onStart: (i) => void (resumedFrom = i.resumedBatches) } });
  assert.equal(resumedFrom, 2);
  assert.equal(resumed.reused, false);
  assert.notEqual(resumed.files[0], full.files[0], 'a second report (fresh) beside the first');
  const again = await evaluateRun(req);
  assert.ok(again.reused, 'the same request again reuses the newest report');
  assert.deepEqual(again.files, resumed.files);
  const a = full.report!;
  const b = resumed.report!;
  assert.equal(b.clean_acc, a.clean_acc);
  assert.equal(b.worst_case_acc, a.worst_case_acc);
  assert.deepEqual(
    b.attacks.map((x) => x.robust_acc),
    a.attacks.map((x) => x.robust_acc),
  );
  assert.deepEqual(b.confusion, a.confusion);
});

test('eval refuses an unknown attack, listing the valid ones', async () => {
  await assert.rejects(
    () => evaluateRun({ runDir: 'does-not-matter', checkpoint: 'last', attacks: ['pgd', 'onepixel'], eps: 0.03, batchSize: 10, seed: 0 }),
    (err: unknown) => err instanceof UserError && /onepixel/.test((err as Error).message),
  );
  assert.throws(() => attackParams('nope', { eps: 0.1 }), /valid attacks: .*pgd/);
});

test('formatEps writes budgets the way papers do', () => {
  assert.equal(formatEps(8 / 255), '8/255');
  assert.equal(formatEps(0.03), '3/100');
  assert.equal(formatEps(2 / 255), '2/255');
});

test('confusion tendency: top wrong predictions per true class, with counts (paper Table 5)', () => {
  const labels = [0, 0, 0, 0, 0, 1, 1, 1, 2, 2];
  const preds = [1, 1, 2, 0, 1, 2, 2, 0, 0, 2];
  const c = confusionTendency('pgd', labels, preds, ['a', 'b', 'c']);
  assert.deepEqual(c.rows[0].top, [{ predicted: 'b', count: 3 }, { predicted: 'c', count: 1 }]);
  assert.deepEqual(c.rows[1].top, [{ predicted: 'c', count: 2 }, { predicted: 'a', count: 1 }]);
  assert.deepEqual(c.rows[2].top, [{ predicted: 'a', count: 1 }]);
  assert.deepEqual(c.matrix, [[1, 3, 1], [1, 0, 2], [1, 0, 1]]);
});
