// `ibrar import` and `train --init-from`. The safetensors files here are written by a minimal
// writer of this file (its own header JSON, its own float16/bfloat16 encoders), not by ibrar's
// encoder, in PyTorch's layout and names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { tf } from '../../src/engine/tf';
import { Rng } from '../../src/engine/rng';
import { configToYaml } from '../../src/config/load';
import { UserError } from '../../src/errors';
import { buildModel } from '../../src/models/registry';
import type { Model } from '../../src/models/types';
import { trainBatches, testBatches, toTensors } from '../../src/data';
import { train } from '../../src/jobs/train';
import { evaluateRun } from '../../src/jobs/eval';
import { openRun } from '../../src/jobs/open-run';
import { importWeights, initFromCheckpoint } from '../../src/jobs/import';
import { TrainStepper } from '../../src/train/step';
import { readCheckpointFiles, torchShape } from '../../src/runs/checkpoint';
import { runLayout } from '../../src/runs/run-dir';
import { writeReport } from '../../src/report/report';
import { plot } from '../../src/report/plot';
import { loadConfig } from '../../src/config/load';
import { tinyConfig, tempDir } from '../helpers/configs';
import { runCli, hasStackTrace } from '../reliability/cli';

// ---------------------------------------------------------------- a minimal safetensors writer

type WDtype = 'F16' | 'BF16' | 'F32' | 'F64' | 'I64';
interface WTensor {
  name: string;
  dtype: WDtype;
  shape: number[];
  values: number[];
}

/** binary16 bits of a value that binary16 represents exactly (normal or subnormal); throws otherwise. */
function f16Bits(x: number): number {
  if (x === 0) return Object.is(x, -0) ? 0x8000 : 0;
  const sign = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -14) {
    const m = a / 2 ** -24;
    assert.ok(Number.isInteger(m) && m < 1024, `${x} is not a float16 subnormal`);
    return sign | m;
  }
  const e = Math.floor(Math.log2(a));
  const m = (a / 2 ** e - 1) * 1024;
  assert.ok(Number.isInteger(m) && e >= -14 && e <= 15, `${x} is not exactly a float16`);
  return sign | ((e + 15) << 10) | m;
}

/** bfloat16 bits: the upper half of the float32 bits, the lower half must be zero. */
function bf16Bits(x: number): number {
  const b = Buffer.alloc(4);
  b.writeFloatLE(x, 0);
  const bits = b.readUInt32LE(0);
  assert.equal(bits & 0xffff, 0, `${x} is not exactly a bfloat16`);
  return bits >>> 16;
}

function tensorBytes(t: WTensor): Buffer {
  const width = { F16: 2, BF16: 2, F32: 4, F64: 8, I64: 8 }[t.dtype];
  const b = Buffer.alloc(width * t.values.length);
  t.values.forEach((v, i) => {
    if (t.dtype === 'F16') b.writeUInt16LE(f16Bits(v), 2 * i);
    else if (t.dtype === 'BF16') b.writeUInt16LE(bf16Bits(v), 2 * i);
    else if (t.dtype === 'F32') b.writeFloatLE(v, 4 * i);
    else if (t.dtype === 'F64') b.writeDoubleLE(v, 8 * i);
    else b.writeBigInt64LE(BigInt(v), 8 * i);
  });
  return b;
}

/** Header in the given tensor order (not the reference's), padded with spaces to 8 bytes. */
function writeSafetensors(file: string, tensors: readonly WTensor[], metadata: Record<string, string> = { format: 'pt' }): Buffer {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const chunks: Buffer[] = [];
  let off = 0;
  for (const t of tensors) {
    const bytes = tensorBytes(t);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + bytes.length] };
    chunks.push(bytes);
    off += bytes.length;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const buf = Buffer.concat([len, Buffer.from(json), ...chunks]);
  fs.writeFileSync(file, buf);
  return buf;
}

/** The model's tensors in PyTorch layout: name, torch shape, the BatchNorm prefixes. */
function torchParams(model: Model): Array<{ name: string; shape: number[] }> {
  return model.params.map((p) => ({ name: p.name, shape: torchShape(p.variable.shape, p.kind) }));
}

function bnPrefixes(model: Model): string[] {
  return model.params.filter((p) => p.name.endsWith('.running_mean')).map((p) => p.name.slice(0, -'.running_mean'.length));
}

const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function listFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

// ---------------------------------------------------------------- tests

test('import: F16, BF16, F32 and F64 tensors load as their exact float32 values; num_batches_tracked is ignored; the run is complete', async () => {
  const cfg = tinyConfig({ name: 'from-torch' });
  const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(0));
  const dir = tempDir('ibrar-import-');
  const dtypes: WDtype[] = ['F16', 'BF16', 'F32', 'F64'];
  // k/64 with |k| ≤ 16 and 0.5 + k/64: exact in binary16 and bfloat16; one float16 subnormal.
  const tensors: WTensor[] = torchParams(model).map((p, j) => ({
    name: p.name,
    dtype: dtypes[j % 4],
    shape: p.shape,
    values: Array.from({ length: numel(p.shape) }, (_, i) => i === 5 && j % 4 === 0 ? 2 ** -20 : (p.name.endsWith('running_var') ? 0.5 : 0) + (((i * 7 + j * 3) % 33) - 16) / 64),
  }));
  const counters = bnPrefixes(model).map((b): WTensor => ({ name: `${b}.num_batches_tracked`, dtype: 'I64', shape: [], values: [123] }));
  model.dispose();
  const file = path.join(dir, 'model.safetensors');
  const buf = writeSafetensors(file, [...counters, ...tensors.reverse()]);

  const { runDir, imported } = await importWeights({ weightsFile: file, cfg });
  assert.equal(imported.sha256, sha256(buf));
  assert.equal(imported.source, file);
  assert.deepEqual(imported.ignored.sort(), counters.map((c) => c.name).sort());
  assert.deepEqual(imported.converted, { F16: tensors.filter((t) => t.dtype === 'F16').length, BF16: tensors.filter((t) => t.dtype === 'BF16').length, F64: tensors.filter((t) => t.dtype === 'F64').length });
  const onDisk = JSON.parse(fs.readFileSync(path.join(runDir, 'imported.json'), 'utf8'));
  assert.equal(onDisk.sha256, sha256(buf));
  assert.deepEqual(onDisk.metadata, { format: 'pt' });

  const layout = runLayout(runDir);
  for (const tag of ['last', 'best']) {
    const { sidecar, weights } = readCheckpointFiles(layout.checkpoints, tag);
    assert.equal(sidecar.epoch, cfg.train.epochs, 'at the config\'s last epoch');
    assert.deepEqual(sidecar.metrics, {});
    assert.deepEqual((sidecar.state as { imported: unknown }).imported, { source: file, sha256: sha256(buf) });
    for (const t of tensors) {
      const got = weights.get(t.name)!;
      assert.equal(got.dtype, 'F32');
      assert.deepEqual(got.shape, t.shape, t.name);
      assert.deepEqual([...(got.data as Float32Array)], t.values.map(Math.fround), `${t.name} (${t.dtype})`);
    }
  }
  assert.equal(fs.existsSync(layout.metricsJsonl), false, 'no training metrics');
  assert.equal(loadConfig(layout.config).name, 'from-torch');
  // A resume has nothing to train: the imported run is complete as it is.
  const resumed = await train({ resumeDir: runDir });
  assert.equal(resumed.alreadyFinished, true);
});

test('import: names off by one layer (VGG16, PyTorch layout) list every offending name, exit 2, nothing written', async () => {
  const runsDir = path.join(tempDir('ibrar-import-vgg-'), 'runs');
  const cfg = tinyConfig({
    name: 'vgg',
    runsDir,
    data: { synthetic: { height: 32, width: 32, channels: 3, classes: 10, trainSize: 20, testSize: 20 } },
    model: { arch: 'vgg16', width: 0.0625 },
  });
  const model = buildModel(cfg.model, 10, [32, 32, 3], new Rng(0));
  const want = new Map(torchParams(model).map((p) => [p.name, p.shape]));
  // The classic slip: 0-based layer indices (layer0 … layer7) where the module counts from 1.
  const shifted = torchParams(model).map((p): WTensor => ({ name: p.name.replace(/^layer(\d)/, (_, k) => `layer${Number(k) - 1}`), dtype: 'F32', shape: p.shape, values: new Array(numel(p.shape)).fill(0) }));
  model.dispose();
  const dir = path.dirname(runsDir);
  const file = path.join(dir, 'vgg-off-by-one.safetensors');
  writeSafetensors(file, shifted);
  const cfgFile = path.join(dir, 'vgg.yaml');
  fs.writeFileSync(cfgFile, configToYaml(cfg));

  const res = await runCli(['import', '--weights', file, '--config', cfgFile]);
  assert.equal(res.code, 2, res.stderr);
  assert.ok(!hasStackTrace(res.stderr), res.stderr);
  const fileNames = new Map(shifted.map((t) => [t.name, t.shape]));
  const missing = [...want.keys()].filter((n) => !fileNames.has(n));
  const unexpected = [...fileNames.keys()].filter((n) => !want.has(n));
  const wrongShape = [...want.keys()].filter((n) => fileNames.has(n) && JSON.stringify(fileNames.get(n)) !== JSON.stringify(want.get(n)));
  assert.ok(missing.includes('layer8.weight') && unexpected.includes('layer0.0.0.weight') && wrongShape.includes('layer1.0.0.weight'));
  assert.match(res.stderr, new RegExp(`${missing.length + unexpected.length + wrongShape.length} problems, nothing written`));
  assert.match(res.stderr, new RegExp(`missing from the file \\(${missing.length}\\)`));
  assert.match(res.stderr, new RegExp(`in the file, not in the model \\(${unexpected.length}\\)`));
  assert.match(res.stderr, new RegExp(`wrong shape [^\\n]*\\(${wrongShape.length}\\)`));
  const lines = res.stderr.split('\n').map((l) => l.trim());
  for (const n of missing) assert.ok(lines.includes(`${n} [${want.get(n)!.join(', ')}]`), `missing ${n} listed`);
  for (const n of unexpected) assert.ok(lines.includes(`${n} F32 [${fileNames.get(n)!.join(', ')}]`), `unexpected ${n} listed`);
  for (const n of wrongShape) assert.ok(lines.includes(`${n}: [${fileNames.get(n)!.join(', ')}], the model needs [${want.get(n)!.join(', ')}]`), `wrong shape ${n} listed`);
  assert.ok(lines.includes('layer1.0.0.weight: [8, 4, 3, 3], the model needs [4, 3, 3, 3]'));
  assert.deepEqual(listFiles(runsDir), [], 'no run directory');
});

test('import: a pickle (.pth, or torch.save bytes under any name) is refused with the README conversion pointer; bad dtypes are listed', async () => {
  const dir = tempDir('ibrar-import-pickle-');
  const runsDir = path.join(dir, 'runs');
  const cfg = tinyConfig({ runsDir });
  const cfgFile = path.join(dir, 'tiny.yaml');
  fs.writeFileSync(cfgFile, configToYaml(cfg));
  const pth = path.join(dir, 'model.pth');
  fs.writeFileSync(pth, Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(60)]));
  const res = await runCli(['import', '--weights', pth, '--config', cfgFile]);
  assert.equal(res.code, 2, res.stderr);
  assert.match(res.stderr, /model\.pth: this is a zip archive \(what torch\.save writes/);
  assert.match(res.stderr, /never reads pickles/);
  assert.match(res.stderr, /safetensors\.torch\.save_file/);
  assert.match(res.stderr, /README\.md, section "Models trained elsewhere"/);
  const renamed = path.join(dir, 'model.safetensors');
  fs.writeFileSync(renamed, Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x28, 0x58, 0x01, 0x00, 0x00]));
  await assert.rejects(importWeights({ weightsFile: renamed, cfg }), (e: unknown) => e instanceof UserError && /Python pickle/.test(e.message));

  // Integer weights and a NaN: named, with everything else.
  const model = buildModel(cfg.model, 4, [8, 8, 3], new Rng(0));
  const ts = torchParams(model).map((p, j): WTensor => ({ name: p.name, dtype: j === 0 ? 'I64' : 'F32', shape: p.shape, values: new Array(numel(p.shape)).fill(j === 1 ? NaN : 0) }));
  model.dispose();
  writeSafetensors(renamed, ts.slice(0, -1));
  await assert.rejects(importWeights({ weightsFile: renamed, cfg }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /3 problems, nothing written/);
    assert.match(e.message, new RegExp(`${ts[0].name}: I64, the model needs F32`));
    assert.match(e.message, new RegExp(`NaN or infinite values \\(1\\):\\n\\s+${ts[1].name.replace('.', '\\.')}`));
    assert.match(e.message, new RegExp(`missing from the file \\(1\\):\\n\\s+${ts.at(-1)!.name.replace('.', '\\.')}`));
    return true;
  });
  assert.deepEqual(listFiles(runsDir), []);
});

test('an imported run evaluates exactly like the run its weights came from; train --init-from starts from them', async () => {
  const source = await train({ cfg: tinyConfig({ name: 'source', train: { epochs: 2 } }) });
  const srcLayout = runLayout(source.runDir);
  const { weights, sidecar: srcSidecar } = readCheckpointFiles(srcLayout.checkpoints, 'last');
  // What a PyTorch user would save: BatchNorm statistics as float64 (exact for float32 values),
  // the counters, names in another order.
  const ts: WTensor[] = [...weights].map(([name, t]) => ({ name, dtype: /running_(mean|var)$/.test(name) ? 'F64' : 'F32', shape: t.shape, values: [...(t.data as Float32Array)] }));
  const dir = tempDir('ibrar-import-eval-');
  const file = path.join(dir, 'trained-elsewhere.safetensors');
  writeSafetensors(file, [...ts.sort((a, b) => (a.name < b.name ? 1 : -1)), { name: 'bn2.num_batches_tracked', dtype: 'I64', shape: [], values: [16] }]);
  const cfgFile = path.join(dir, 'tiny.yaml');
  const base = loadConfig(srcLayout.config);
  fs.writeFileSync(cfgFile, configToYaml(base));

  const cli = await runCli(['import', '--weights', file, '--config', cfgFile, '--name', 'imported']);
  assert.equal(cli.code, 0, cli.stderr);
  const imported = cli.stdout.trim();
  assert.equal(path.basename(path.dirname(imported)), 'imported');
  assert.match(cli.stderr, /converted to float32: \d+ F64, ignored 1 num_batches_tracked/);

  const req = { checkpoint: 'last', attacks: ['fgsm', 'pgd'], eps: 0.1, steps: 3, n: 128, batchSize: 64, seed: 0 };
  const a = (await evaluateRun({ runDir: source.runDir, ...req })).report!;
  const b = (await evaluateRun({ runDir: imported, ...req })).report!;
  assert.ok(a.clean_acc > 0.9, `source clean accuracy ${a.clean_acc}`);
  assert.equal(b.clean_acc, a.clean_acc);
  assert.deepEqual(b.attacks.map((x) => x.robust_acc), a.attacks.map((x) => x.robust_acc));
  assert.equal(b.worst_case_acc, a.worst_case_acc);
  // report and plot read it like any run.
  await evaluateRun({ runDir: imported, ...req, eps: 0.05 });
  const { table } = writeReport({ paths: [imported], layout: 'all', eps: 'all', outDir: path.join(dir, 'report') });
  assert.equal(table.rows.find((r) => r.eps === 0.1)!.cells.natural!.mean, a.clean_acc);
  assert.ok(fs.statSync(plot({ runDirs: [imported], kind: 'eps' })[0]).size > 0);

  // Fine-tuning from the imported run: its model before any step is the imported one …
  const ftCfg = tinyConfig({ name: 'finetune', train: { epochs: 1, initFrom: imported } });
  const opened = await openRun({ kind: 'existing', runDir: imported, checkpoint: 'last' });
  const fresh = buildModel(ftCfg.model, 4, [8, 8, 3], new Rng(ftCfg.seed).fork('init'));
  const initRecord = initFromCheckpoint(fresh, imported);
  const logitsOf = async (m: Model) => {
    const batch = testBatches(opened.dataset.test, 128).next().value!;
    const { x, y, yOneHot } = toTensors(batch, 4);
    const logits = m.forward(x, { training: false }).logits;
    const out = await logits.data();
    tf.dispose([x, y, yOneHot, logits]);
    return [...out];
  };
  assert.deepEqual(await logitsOf(fresh), await logitsOf(opened.model), 'logits before training = the imported run\'s');
  const imp = readCheckpointFiles(runLayout(imported).checkpoints, 'last').sidecar;
  assert.deepEqual(initRecord, { checkpoint: path.join(runLayout(imported).checkpoints, 'last.json'), weightsSha256: imp.files.weights.sha256, epoch: 2 });

  // … and its first step is exactly one SGD step from them (fresh momentum, epoch 0's first batch).
  let calls = 0;
  const ft = await train({ cfg: ftCfg, shouldStop: () => ++calls >= 1 });
  assert.equal(ft.interrupted, true);
  const ftSaved = loadConfig(runLayout(ft.runDir).config);
  assert.equal(ftSaved.train.initFrom, path.resolve(imported), 'the saved config names where it started');
  const ftCkpt = readCheckpointFiles(runLayout(ft.runDir).checkpoints, 'last');
  assert.equal(ftCkpt.sidecar.step, 1);
  assert.deepEqual((ftCkpt.sidecar.state as { initFrom: unknown }).initFrom, initRecord);
  const firstBatch = trainBatches(opened.dataset.train, { batchSize: ftCfg.train.batchSize, seed: ftCfg.seed, epoch: 0, shuffle: true, augment: ftCfg.data.augment }).next().value!;
  const stepOnce = async (m: Model) => {
    const stepper = new TrainStepper(ftCfg, m, 4);
    await stepper.step(firstBatch, 0, 0);
    stepper.dispose();
    return new Map(m.params.map((p) => [p.name, [...(p.variable.dataSync() as Float32Array)]]));
  };
  const expected = await stepOnce(fresh);
  const fromInit = await stepOnce(buildModel(ftCfg.model, 4, [8, 8, 3], new Rng(ftCfg.seed).fork('init')));
  const ftModel = buildModel(ftCfg.model, 4, [8, 8, 3], new Rng(99));
  initFromCheckpoint(ftModel, path.join(runLayout(ft.runDir).checkpoints, 'last.json'));
  let differsFromInit = false;
  for (const p of ftModel.params) {
    const got = [...(p.variable.dataSync() as Float32Array)];
    assert.deepEqual(got, expected.get(p.name), `${p.name} after one fine-tuning step`);
    if (JSON.stringify(got) !== JSON.stringify(fromInit.get(p.name))) differsFromInit = true;
  }
  assert.ok(differsFromInit, 'a step from a fresh initialisation gives other weights (the check can fail)');
  assert.equal(srcSidecar.epoch, 2);
  opened.dispose();
  fresh.dispose();
  ftModel.dispose();

  // An incompatible architecture is refused before any run directory is made.
  const other = tinyConfig({ name: 'wider', model: { width: 0.5 }, train: { initFrom: imported } });
  await assert.rejects(train({ cfg: other }), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /train\.initFrom: cannot start from this checkpoint: .*wrong shape/s);
    return true;
  });
  assert.deepEqual(listFiles(other.runsDir), []);
  const cliBad = await runCli(['train', '--config', cfgFile, '--set', 'model.arch=vgg16', '--init-from', imported]);
  assert.equal(cliBad.code, 2, cliBad.stderr);
  assert.match(cliBad.stderr, /the checkpoint is a small-cnn, this run trains a vgg16/);
});
