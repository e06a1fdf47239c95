import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { writeReport, buildReportTable } from '../../src/report/report';
import { groupName, meanStd, ablationRow } from '../../src/report/aggregate';
import { latexEscape } from '../../src/report/tables';
import { parseCsv } from '../../src/runs/metrics';
import { UserError } from '../../src/errors';
import { tinyConfig, tempDir } from '../helpers/configs';
import { fakeEval, fakeRun } from './fake-runs';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-02T00:00:00.000Z';
const T2 = '2026-01-03T00:00:00.000Z';

/** Three seeds of one experiment (dyadic numbers, so mean and std are exact) and one baseline. */
function fixture(): { root: string; runs: string[] } {
  const root = tempDir('ibrar-report-');
  const clean = [0.25, 0.5, 0.75];
  const pgd = [0.125, 0.25, 0.375];
  const runs = [1, 2, 3].map((s, i) => {
    const dir = fakeRun(root, tinyConfig({ name: `ibrar-s${s}`, seed: s, ib: { enabled: true, mask: { enabled: true } } }), '20260101-000000');
    fakeEval(dir, '20260101-000000.json', {
      clean: clean[i],
      attacks: { pgd: pgd[i], cw: 0.5, fgsm: 0.5, fab: 0.5, nifgsm: 0.5 },
      steps: { pgd: 10, cw: 200, fab: 10, nifgsm: 10 },
      createdAt: T0,
    });
    return dir;
  });
  // Later evaluations that must not replace the full one: a one-attack sweep point at the same
  // ε, and a full evaluation at another ε.
  fakeEval(runs[0], '20260102-000000.json', { clean: 0.9, attacks: { pgd: 0.9 }, steps: { pgd: 1 }, createdAt: T1 });
  fakeEval(runs[0], '20260103-000000.json', { clean: 0.9, attacks: { pgd: 0.9, cw: 0.9, fgsm: 0.9, fab: 0.9, nifgsm: 0.9 }, eps: 0.1, createdAt: T2 });
  const base = fakeRun(root, tinyConfig({ name: 'baseline_seed0', seed: 0 }), '20260101-000000');
  fakeEval(base, '20260101-000000.json', { clean: 0.875, attacks: { pgd: 0.0625, fgsm: 0.125 }, steps: { pgd: 10 }, createdAt: T0 });
  return { root, runs: [...runs, base] };
}

test('group names drop the seed suffix; mean and sample std', () => {
  assert.equal(groupName('cifar10-vgg16-pgd-s2'), 'cifar10-vgg16-pgd');
  assert.equal(groupName('x_seed12'), 'x');
  assert.equal(groupName('vgg16'), 'vgg16');
  assert.deepEqual(meanStd([0.25, 0.5, 0.75]), { mean: 0.5, std: 0.25 });
  assert.deepEqual(meanStd([0.3]), { mean: 0.3, std: 0 });
});

test('report aggregates three fake runs: mean ± std exact, in all four formats', () => {
  const { root } = fixture();
  const out = path.join(root, 'out');
  const { table, files } = writeReport({ paths: [root], layout: 'main', outDir: out });
  assert.deepEqual(files.map((f) => path.basename(f)), ['report.md', 'report.tex', 'report.csv', 'report.json']);
  assert.deepEqual(table.rows.map((r) => r.label), ['baseline', 'ibrar']);
  assert.deepEqual(table.rows.map((r) => [r.eps, r.n]), [[0.03, 100], [0.03, 100]]);
  const ib = table.rows.find((r) => r.label === 'ibrar')!;
  assert.deepEqual(ib.seeds, [1, 2, 3]);
  assert.deepEqual(ib.cells.natural, { mean: 0.5, std: 0.25, n: 3, values: [0.25, 0.5, 0.75] });
  assert.deepEqual(ib.cells.pgd, { mean: 0.25, std: 0.125, n: 3, values: [0.125, 0.25, 0.375] });
  assert.deepEqual(ib.cells.cw, { mean: 0.5, std: 0, n: 3, values: [0.5, 0.5, 0.5] });
  assert.equal(ib.evalFiles[0].endsWith('20260101-000000.json'), true, 'the full evaluation at the run’s ε is used');
  const base = table.rows.find((r) => r.label === 'baseline')!;
  assert.equal(base.cells.cw, null);

  const md = fs.readFileSync(files[0], 'utf8');
  assert.match(md, /\| ibrar \| 50\.00 ± 25\.00 \| 25\.00 ± 12\.50 \| 50\.00 ± 0\.00 \| 50\.00 ± 0\.00 \| 50\.00 ± 0\.00 \| 50\.00 ± 0\.00 \| 3 \|/);
  assert.match(md, /\| baseline \| 87\.50 \| 6\.25 \| – \| 12\.50 \| – \| – \| 1 \|/);
  assert.match(md, /PGD 10 steps, CW 200 steps/);
  const tex = fs.readFileSync(files[1], 'utf8');
  assert.match(tex, /\\toprule\nMethod & Natural & PGD & CW & FGSM & FAB & NIFGSM \\\\\n\\midrule/);
  assert.match(tex, /ibrar & 50\.00 \$\\pm\$ 25\.00 & 25\.00 \$\\pm\$ 12\.50 &/);
  assert.match(tex, /\\bottomrule/);
  const csv = parseCsv(fs.readFileSync(files[2], 'utf8'));
  const header = csv[0];
  const row = csv.find((r) => r[1] === 'ibrar')!;
  assert.equal(Number(row[header.indexOf('natural_mean')]), 0.5);
  assert.equal(Number(row[header.indexOf('natural_std')]), 0.25);
  assert.equal(Number(row[header.indexOf('pgd_std')]), 0.125);
  const json = JSON.parse(fs.readFileSync(files[3], 'utf8'));
  assert.equal(json.format, 'ibrar-report/1');
  assert.equal(json.rows.length, 2);
});

test('--eval picks one evaluation file in every run; a missing one is a user error', () => {
  const { root, runs } = fixture();
  const t = buildReportTable({ paths: [runs[0]], layout: 'main', evalChoice: '20260103-000000', eps: 0.1 });
  assert.equal(t.rows[0].cells.natural!.mean, 0.9);
  assert.throws(() => buildReportTable({ paths: [root], layout: 'main', evalChoice: '20260103-000000.json' }), UserError);
});

test('ablation layout names the paper’s Table 4 rows from the configs', () => {
  const { root } = fixture();
  const t = buildReportTable({ paths: [root], layout: 'ablation' });
  assert.deepEqual(t.columns.map((c) => c.header), ['Natural', 'PGD', 'NIFGSM', 'FGSM']);
  assert.equal(t.rows.find((r) => r.label === 'baseline')!.ablation!.index, 1);
  assert.equal(t.rows.find((r) => r.label === 'ibrar')!.ablation!.index, 6);
  assert.equal(ablationRow(tinyConfig({ ib: { enabled: true, alpha: 0 } }))!.index, 4);
  assert.equal(ablationRow(tinyConfig({ ib: { enabled: true, beta: 0 } }))!.index, 3);
  assert.equal(ablationRow(tinyConfig({ ib: { mask: { enabled: true } } }))!.index, 5);
  assert.equal(ablationRow(tinyConfig({ ib: { enabled: true } }))!.index, 2);
});

test('VIB rows carry the sampling note; LaTeX escaping', () => {
  const root = tempDir('ibrar-report-');
  const dir = fakeRun(root, tinyConfig({ name: 'vib', model: { head: 'vib' }, train: { method: 'vib' } }), '20260101-000000');
  fakeEval(dir, 'a.json', { clean: 0.5, attacks: { pgd: 0.25 }, createdAt: T0 });
  const t = buildReportTable({ paths: [root], layout: 'all' });
  assert.ok(t.notes.some((n) => /12-sample average/.test(n)));
  assert.equal(latexEscape('a_b & 5% #1'), 'a\\_b \\& 5\\% \\#1');
});

test('rows never mix budgets or sizes; columns can ask for attack parameters; probe candidates stay out', () => {
  const { root, runs } = fixture();
  // Every ε: the ibrar group splits into a row at 0.03 and one at 0.1 (one run), labelled so.
  const all = buildReportTable({ paths: [root], layout: 'main', eps: 'all' });
  assert.deepEqual(all.rows.map((r) => r.label).sort(), ['baseline (ε 0.03, n 100)', 'ibrar (ε 0.03, n 100)', 'ibrar (ε 0.1, n 100)']);
  assert.equal(all.rows.find((r) => r.eps === 0.1)!.cells.natural!.n, 1);
  // Another n at the same ε is another row too.
  fakeEval(runs[1], '20260104-000000.json', { clean: 0.125, attacks: { pgd: 0 }, steps: { pgd: 10 }, createdAt: T2, n: 50 });
  const byN = buildReportTable({ paths: [root], layout: 'main' });
  assert.deepEqual(byN.rows.map((r) => r.label).sort(), ['baseline (ε 0.03, n 100)', 'ibrar (ε 0.03, n 100)', 'ibrar (ε 0.03, n 50)']);
  // A column with an attack parameter takes the evaluation that ran it so.
  const cols = buildReportTable({ paths: [runs[0]], layout: 'main', columns: ['natural', 'pgd', 'pgd:steps=1'] });
  assert.deepEqual(cols.columns.map((c) => c.header), ['Natural', 'PGD', 'PGD-1']);
  assert.equal(cols.rows[0].cells['pgd:steps=1']!.mean, 0.9);
  assert.equal(cols.rows[0].cells.pgd!.mean, 0.125, 'the full evaluation still gives the plain column');
  // A slice whose only PGD ran with the named parameters fills that column, not the bare one
  // (n = 50 above: only a 10-step PGD, asked for as pgd:steps=10 beside pgd).
  const only = buildReportTable({ paths: [runs[1]], layout: 'main', columns: ['natural', 'pgd', 'pgd:steps=10'] }).rows.find((r) => r.n === 50)!;
  assert.equal(only.cells['pgd:steps=10']!.mean, 0);
  assert.equal(only.cells.pgd, null);
  // Different PGD settings within one row are not averaged.
  fakeEval(runs[2], '20260105-000000.json', { clean: 0.75, attacks: { pgd: 0.5, cw: 0.5, fgsm: 0.5, fab: 0.5, nifgsm: 0.5 }, steps: { pgd: 20, cw: 200, fab: 10, nifgsm: 10 }, createdAt: T2 });
  const mixed = buildReportTable({ paths: [root], layout: 'main' }).rows.find((r) => r.label.startsWith('ibrar') && r.n === 100)!;
  assert.equal(mixed.cells.pgd, null);
  assert.ok(mixed.differs.includes('pgd parameters'));
  // A probe's candidates: only with includeProbes.
  const probe = path.join(root, 'p-probe', '20260101-000000');
  fs.mkdirSync(probe, { recursive: true });
  fs.writeFileSync(path.join(probe, 'probe-state.json'), '{}');
  const cand = fakeRun(path.join(probe, 'candidates'), tinyConfig({ name: 'conv3' }), '20260101-000000');
  fakeEval(cand, 'a.json', { clean: 0.5, attacks: { pgd: 0.25 }, createdAt: T0 });
  assert.ok(!buildReportTable({ paths: [root], layout: 'main' }).rows.some((r) => r.label.startsWith('conv3')));
  assert.ok(buildReportTable({ paths: [root], layout: 'main', includeProbes: true }).rows.some((r) => r.label.startsWith('conv3')));
});
