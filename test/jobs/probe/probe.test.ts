import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { runProbe } from '../../../src/jobs/probe/probe';
import { buildProbeResult, probeMarkdown } from '../../../src/report/probe-table';
import { probeCandidates } from '../../../src/jobs/probe/candidates';
import type { CandidateRecord } from '../../../src/runs/probe-files';
import { loadConfig } from '../../../src/config/load';
import { runLayout } from '../../../src/runs/run-dir';
import { UserError } from '../../../src/errors';
import { tinyConfig } from '../../helpers/configs';

export const probeConfig = () =>
  tinyConfig({
    name: 'probe',
    data: { synthetic: { trainSize: 128, testSize: 64 } },
    train: { epochs: 2, batchSize: 32 },
    ib: { enabled: true, layers: ['conv3', 'fc1'], alpha: 0.008, beta: 0.08 },
    eval: { eps: 0.2, steps: 2, batchSize: 64 },
    probe: { margin: 1 },
  });

test('probe on a tiny synthetic config: one row per candidate, numbers from each run’s evaluation, recommendation by the rule', async () => {
  const cfg = probeConfig();
  const out = await runProbe({ cfg });
  assert.equal(out.interrupted, false);
  assert.deepEqual(out.failed, []);
  const r = out.result;
  assert.equal(r.complete, true);
  assert.deepEqual(r.rows.map((x) => x.id), ['ce', 'conv1', 'conv2', 'conv3', 'fc1', 'all', 'robust']);
  assert.equal(r.rows[6].label, 'Robust layers (conv3, fc1)');
  assert.ok(out.probeDir.startsWith(path.join(cfg.runsDir, 'probe-probe') + path.sep));
  const ce = r.rows[0];
  for (const row of r.rows) {
    assert.equal(row.status, 'done');
    // Each candidate is an ordinary run under candidates/<id>/ with only `ib` changed.
    assert.ok(row.runDir!.startsWith(path.join(out.probeDir, 'candidates', row.id) + path.sep));
    const rc = loadConfig(runLayout(row.runDir!).config);
    assert.equal(rc.ib.enabled, row.kind !== 'ce');
    if (row.kind !== 'ce') assert.deepEqual(rc.ib.layers, row.layers);
    assert.equal(rc.train.epochs, 2);
    const evals = fs.readdirSync(runLayout(row.runDir!).evalDir).filter((f) => f.endsWith('.json'));
    assert.equal(evals.length, 1);
    const rep = JSON.parse(fs.readFileSync(path.join(runLayout(row.runDir!).evalDir, evals[0]), 'utf8'));
    assert.equal(row.clean_acc, rep.clean_acc);
    assert.equal(row.adv_acc, rep.attacks[0].robust_acc);
    assert.equal(rep.attacks[0].attack, 'pgd');
    assert.equal(rep.attacks[0].params.steps, 2);
    assert.equal(rep.eps, 0.2);
    assert.equal(row.delta_adv, 100 * (row.adv_acc! - ce.adv_acc!));
  }
  const want = r.rows.filter((x) => x.kind === 'layer' && 100 * (x.adv_acc! - ce.adv_acc!) >= 1 - 1e-9).map((x) => x.id);
  assert.deepEqual(r.recommended, want);
  assert.deepEqual(r.rows.filter((x) => x.kind !== 'layer').map((x) => x.robust), [null, null, null]);
  const [json, csv, md] = out.files;
  assert.deepEqual(JSON.parse(fs.readFileSync(json, 'utf8')).recommended, want);
  assert.equal(fs.readFileSync(csv, 'utf8').trim().split('\n').length, 8);
  const text = fs.readFileSync(md, 'utf8');
  assert.equal(text.split('\n').filter((l) => /^\| (CE only|conv\d|fc1|All layers|Robust layers)/.test(l)).length, 7);
  assert.match(text, /\| Layer \| Adv\. acc\. \(PGD\) \| Test acc\. \| Δ Adv\. vs CE only \| Robust \|/);
  // A re-run of a finished probe trains nothing and gives the same table.
  let started = 0;
  const again = await runProbe({ cfg, progress: { onCandidateStart: () => void started++ } });
  assert.equal(again.probeDir, out.probeDir);
  assert.equal(started, 0);
  assert.deepEqual(again.result.rows, r.rows);
});

test('the rule: a layer is robust iff its adversarial accuracy is ≥ margin points above the baseline', () => {
  const cfg = probeConfig();
  const rec = (id: string, kind: CandidateRecord['kind'], adv: number | undefined, status: CandidateRecord['status'] = 'done'): CandidateRecord => ({
    id,
    kind,
    label: id,
    layers: kind === 'ce' ? [] : [id],
    status,
    adv_acc: adv,
    clean_acc: 0.9,
  });
  const r = buildProbeResult(cfg, '/p', [
    rec('ce', 'ce', 0.1),
    rec('conv1', 'layer', 0.11),
    rec('conv2', 'layer', 0.1099),
    rec('conv3', 'layer', 0.4),
    rec('fc1', 'layer', undefined, 'pending'),
    rec('all', 'all', 0.3),
  ]);
  assert.deepEqual(r.rows.map((x) => x.robust), [null, true, false, true, null, null]);
  assert.deepEqual(r.recommended, ['conv1', 'conv3']);
  assert.equal(r.configYaml, 'ib:\n  layers: [conv1, conv3]\n');
  assert.equal(r.setFlag, "--set 'ib.layers=[conv1,conv3]'");
  assert.equal(r.complete, false);
  assert.match(probeMarkdown(r), /Incomplete/);
  const strict = buildProbeResult({ ...cfg, probe: { ...cfg.probe, margin: 5 } }, '/p', [rec('ce', 'ce', 0.1), rec('conv3', 'layer', 0.14)]);
  assert.deepEqual(strict.recommended, []);
  assert.equal(strict.configYaml, null);
});

test('candidates: every tap by default, a chosen subset, bad names rejected', () => {
  const cfg = probeConfig();
  assert.deepEqual(probeCandidates(cfg).map((c) => c.id), ['ce', 'conv1', 'conv2', 'conv3', 'fc1', 'all', 'robust']);
  assert.deepEqual(probeCandidates(cfg, ['fc1', 'conv2']).map((c) => c.id), ['ce', 'conv2', 'fc1', 'all', 'robust']);
  assert.throws(() => probeCandidates(cfg, ['block9']), (e: unknown) => e instanceof UserError && /valid taps of small-cnn: conv1, conv2, conv3, fc1/.test(e.message));
  const vgg = tinyConfig({ model: { arch: 'vgg16' }, ib: { layers: 'robust' } });
  assert.equal(probeCandidates(vgg).at(-1)!.label, 'Robust layers (block5, fc1, fc2)');
  assert.equal(probeCandidates(vgg).length, 10);
  assert.throws(() => probeCandidates(tinyConfig({ train: { method: 'hbar' } })), UserError);
});
