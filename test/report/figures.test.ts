import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { train } from '../../src/jobs/train';
import { readAdvCurve, readInfoPlane } from '../../src/runs/monitor-files';
import { readMetrics } from '../../src/runs/metrics';
import { runLayout } from '../../src/runs/run-dir';
import { loadDataset, sliceSplit, testBatches, toTensors } from '../../src/data';
import { buildModel } from '../../src/models/registry';
import { loadCheckpoint } from '../../src/runs/checkpoint';
import { hsicCcaValue } from '../../src/ib';
import { plot } from '../../src/report/plot';
import { minNormCurve, runRefs, stepsFigure } from '../../src/report/figures';
import { computeSweep } from '../../src/jobs/figures';
import { evaluateRun } from '../../src/jobs/eval';
import { computeTsneFile } from '../../src/jobs/tsne';
import { readEvalFiles } from '../../src/report/runs';
import { niceTicks, parseMarkers } from '../../src/report/svg';
import type { TsneData } from '../../src/runs/tsne-file';
import { tempDir, tinyConfig } from '../helpers/configs';
import { fakeEval, fakeRun } from './fake-runs';

const monitored = () =>
  tinyConfig({
    data: { synthetic: { testSize: 100 } },
    train: { epochs: 2, monitor: { infoPlaneEvery: 4, advAccEvery: 1 } },
    eval: { eps: 0.1, steps: 2 },
  });

let shared: Promise<string> | null = null;
/** One monitored training run shared by the figure tests (8 steps per epoch, 2 epochs). */
function monitoredRun(): Promise<string> {
  shared ??= train({ cfg: monitored() }).then((r) => r.runDir);
  return shared;
}

const near = (a: number, b: number, tol = 1e-9) => Math.abs(a - b) <= tol * Math.max(1, Math.abs(b));

test('the monitor records the information plane every 4 steps and clean/adversarial accuracy every epoch', async () => {
  const runDir = await monitoredRun();
  const info = readInfoPlane(runDir);
  assert.deepEqual(info.map((r) => r.step), [0, 4, 8, 12, 16]);
  assert.deepEqual(info.map((r) => r.progress), [0, 0.25, 0.5, 0.75, 1]);
  assert.deepEqual(Object.keys(info[0].hx), ['conv1', 'conv2', 'conv3', 'fc1']);
  // The last record is HSIC(X,T_l), HSIC(Y,T_l) of the final model on the first 100 test examples.
  const cfg = monitored();
  const ds = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, ds.numClasses, ds.shape, new Rng(cfg.seed).fork('init'));
  loadCheckpoint(runLayout(runDir).checkpoints, 'last', model.params);
  const batch = testBatches(sliceSplit(ds.test, 0, 100), 100).next().value!;
  const { x, y, yOneHot } = toTensors(batch, ds.numClasses);
  tf.tidy(() => {
    const { taps } = model.forward(x, { training: false });
    for (const l of model.tapNames) {
      const hx = hsicCcaValue(taps[l], x);
      const hy = hsicCcaValue(taps[l], yOneHot, { kernelB: 'linear' });
      assert.ok(near(info[4].hx[l], hx, 1e-6), `${l}: hx ${info[4].hx[l]} vs ${hx}`);
      assert.ok(near(info[4].hy[l], hy, 1e-6), `${l}: hy ${info[4].hy[l]} vs ${hy}`);
    }
  });
  tf.dispose([x, y, yOneHot]);
  model.dispose();
  const adv = readAdvCurve(runDir);
  const metrics = readMetrics(runDir);
  assert.deepEqual(adv.map((r) => r.epoch), [1, 2]);
  // The held-out batch is the whole 100-image test set here, so its clean accuracy is test_acc.
  adv.forEach((r, i) => assert.equal(r.clean_acc, metrics[i].test_acc));
  assert.ok(adv.every((r) => r.attack === 'pgd' && r.steps === 2 && r.eps === 0.1 && r.adv_acc <= r.clean_acc));
});

test('the monitor files of a resumed run equal those of an uninterrupted one', async () => {
  const full = await train({ cfg: monitored() });
  let steps = 0;
  const cut = await train({ cfg: monitored(), shouldStop: () => ++steps >= 11 });
  assert.equal(cut.interrupted, true);
  await train({ resumeDir: cut.runDir });
  assert.deepEqual(readInfoPlane(cut.runDir), readInfoPlane(full.runDir));
  assert.deepEqual(readAdvCurve(cut.runDir), readAdvCurve(full.runDir));
});

test('curves: markers are the metrics and the adversarial curve of the run (one run and overlaid)', async () => {
  const runDir = await monitoredRun();
  const [file] = plot({ runDirs: [runDir], kind: 'curves' });
  assert.equal(file, path.join(runLayout(runDir).figures, 'curves.svg'));
  const marks = parseMarkers(fs.readFileSync(file, 'utf8'));
  const metrics = readMetrics(runDir);
  const series = (name: string) => marks.filter((m) => m.series === name).map((m) => [m.x, m.y]);
  assert.deepEqual(series('train loss'), metrics.map((r) => [r.epoch, r.train_loss]));
  assert.deepEqual(series('test (clean)'), metrics.map((r) => [r.epoch, 100 * (r.test_acc as number)]));
  const adv = marks.filter((m) => m.series.startsWith('adversarial'));
  assert.deepEqual(adv.map((m) => [m.x, m.y]), readAdvCurve(runDir).map((r) => [r.epoch, 100 * r.adv_acc]));
  const out = path.join(runLayout(runDir).dir, 'overlay');
  const [two] = plot({ runDirs: [runDir, runDir], kind: 'curves', outDir: out });
  assert.equal(parseMarkers(fs.readFileSync(two, 'utf8')).length, 2 * marks.length);
});

test('info-plane: one panel per tap, points (HSIC(X,T), HSIC(Y,T)) from info_plane.jsonl', async () => {
  const runDir = await monitoredRun();
  const [file] = plot({ runDirs: [runDir], kind: 'info-plane' });
  const svg = fs.readFileSync(file, 'utf8');
  const info = readInfoPlane(runDir);
  for (const layer of ['conv1', 'conv2', 'conv3', 'fc1']) {
    assert.match(svg, new RegExp(`data-title="${layer}"`));
    const pts = parseMarkers(svg).filter((m) => m.series === layer);
    assert.deepEqual(pts.map((p) => [p.x, p.y, Number(p.label)]), info.map((r) => [r.hx[layer], r.hy[layer], r.step]));
  }
});

test('steps and eps: --compute runs the missing evaluations; markers are their accuracies', async () => {
  const runDir = await monitoredRun();
  const ref = runRefs([runDir])[0];
  await computeSweep(ref, { kind: 'steps', attacks: ['pgd'], stepsList: [1, 2], n: 64 });
  const [stepsFile] = plot({ runDirs: [runDir], kind: 'steps', computed: true, attacks: ['pgd'] });
  const evals = readEvalFiles(runDir);
  const pgdAt = (steps: number) => evals.map((e) => e.report).find((r) => r.eps === 0.1 && r.attacks.some((a) => a.attack === 'pgd' && a.params.steps === steps))!;
  const marks = parseMarkers(fs.readFileSync(stepsFile, 'utf8'));
  assert.deepEqual(marks.map((m) => [m.x, m.y]), [1, 2].map((s) => [s, 100 * pgdAt(s).attacks.find((a) => a.attack === 'pgd')!.robust_acc]));
  const before = readEvalFiles(runDir).length;
  assert.equal(await computeSweep(ref, { kind: 'steps', attacks: ['pgd'], stepsList: [1, 2], n: 64 }), 0);
  assert.equal(readEvalFiles(runDir).length, before, 'nothing is recomputed');

  await computeSweep(ref, { kind: 'eps', attacks: ['fgsm'], epsList: [0.05, 0.1], n: 64 });
  const [epsFile] = plot({ runDirs: [runDir], kind: 'eps', computed: true, attacks: ['fgsm'] });
  const fg = readEvalFiles(runDir)
    .map((e) => e.report)
    .filter((r) => r.attacks.some((a) => a.attack === 'fgsm'));
  const at = (eps: number) => fg.find((r) => r.eps === eps)!;
  const em = parseMarkers(fs.readFileSync(epsFile, 'utf8'));
  assert.deepEqual(
    em.map((m) => [m.x, m.y]),
    [
      [0, 100 * at(0.1).clean_acc],
      [0.05, 100 * at(0.05).attacks[0].robust_acc],
      [0.1, 100 * at(0.1).attacks[0].robust_acc],
    ],
  );
});

test('tsne: clean and adversarial panels with one point per test example, coloured by its class', async () => {
  const runDir = await monitoredRun();
  const computed = await computeTsneFile({ runDir, n: 40, iterations: 250, perplexity: 8 });
  const files = [...plot({ runDirs: [runDir], kind: 'tsne' }), computed.file];
  assert.deepEqual(files.map((f) => path.basename(f)), ['tsne.svg', 'tsne.json']);
  const data = JSON.parse(fs.readFileSync(files[1], 'utf8')) as TsneData;
  const cfg = monitored();
  const ds = await loadDataset(cfg.data, cfg.seed);
  assert.deepEqual(data.labels, Array.from(ds.test.labels.slice(0, 40)));
  assert.equal(data.tap, 'fc1');
  const marks = parseMarkers(fs.readFileSync(files[0], 'utf8'));
  for (const [series, emb] of [['clean', data.clean], ['adversarial', data.adversarial]] as const) {
    const pts = marks.filter((m) => m.series === series);
    assert.equal(pts.length, 40);
    assert.deepEqual(pts.map((p) => [p.x, p.y]), emb.points);
    assert.deepEqual(pts.map((p) => Number(p.label)), data.labels);
  }
  const acc = data.clean.predictions.filter((p, i) => p === data.labels[i]).length / 40;
  assert.ok(acc > 0.9, `clean predictions come from the trained model (${acc})`);
});

test('epoch and step axes tick at whole numbers; an attack without points gets a note, not an empty panel', () => {
  assert.deepEqual(niceTicks(0.8, 3.2, 5, true), [1, 2, 3]);
  assert.deepEqual(niceTicks(0.8, 3.2, 5), [1, 1.5, 2, 2.5, 3]);
  const root = tempDir('ibrar-steps-');
  const dir = fakeRun(root, tinyConfig({ name: 'steps' }), '20260101-000000');
  fakeEval(dir, 'a.json', { clean: 0.9, attacks: { pgd: 0.5 }, steps: { pgd: 10 }, createdAt: '2026-01-01T00:00:00.000Z' });
  fakeEval(dir, 'b.json', { clean: 0.9, attacks: { pgd: 0.25 }, steps: { pgd: 20 }, createdAt: '2026-01-02T00:00:00.000Z' });
  const svg = stepsFigure(runRefs([dir]), { attacks: ['pgd', 'cw'] });
  assert.match(svg, /data-title="PGD/);
  assert.doesNotMatch(svg, /data-title="CW/);
  assert.match(svg, /No evaluations at ε = 0\.03 with cw/);
});

test('eps: a minimum-norm attack (FMN) gives the whole accuracy-against-ε curve from one evaluation', async () => {
  const runDir = await monitoredRun();
  const out = await evaluateRun({ runDir, attacks: ['fmn'], eps: 0.1, n: 64, params: { fmn: { steps: 20 } } });
  const fmn = out.report!.attacks[0];
  assert.equal(fmn.distance_norm, 'linf');
  const correct = out.report!.clean_acc * out.report!.n;
  assert.equal(fmn.min_norms!.length, Math.round(correct), 'one entry per initially correct example');
  // At the evaluated ε the curve equals the attack's robust accuracy (points beyond ε were returned clean).
  const robustAt = (e: number) => fmn.min_norms!.filter((v) => v === null || v > e).length / out.report!.n;
  assert.ok(near(robustAt(0.1), fmn.robust_acc), `${robustAt(0.1)} vs ${fmn.robust_acc}`);
  const curve = minNormCurve(readEvalFiles(runDir), 'fmn')!;
  assert.equal(curve.points[0][1], out.report!.clean_acc, 'ε = 0: clean accuracy');
  for (let j = 1; j < curve.points.length; j++) assert.ok(curve.points[j][1] <= curve.points[j - 1][1], 'non-increasing in ε');
  const [file] = plot({ runDirs: [runDir], kind: 'eps', attacks: ['fmn'] });
  const marks = parseMarkers(fs.readFileSync(file, 'utf8'));
  assert.equal(marks.length, curve.points.length);
  assert.deepEqual(marks.map((m) => [m.x, m.y]), curve.points.map(([x, y]) => [x, 100 * y]));
});
