// Models trained elsewhere. `ibrar import` turns a PyTorch state_dict saved as safetensors
// (under the names ibrar uses: the authors' for VGG16, the documented ones for the others) into
// an ordinary run directory: the resolved config, a `last` and a `best` checkpoint with the
// weights, no training metrics, and `imported.json` naming the source file and its SHA-256.
// `train.initFrom` (train --init-from) starts a new training from another run's checkpoint.
//
// Every tensor's name, dtype and shape is checked against the model built from the config, and
// a mismatch lists all the offending names at once; nothing is written unless all of it fits.
// F16, BF16 and F64 weights are converted to float32 (F16/BF16 exactly); BatchNorm's
// `num_batches_tracked` counters (int64 in PyTorch) are accepted and ignored. Pickles
// (`torch.save`'s .pt/.pth) are refused with a pointer to the README's conversion snippet:
// ibrar never unpickles (that would run code from the file).
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { z } from 'zod';
import { tf } from '../engine/tf';
import { loadConfig, MAX_CONFIG_BYTES } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import type { Model, NamedParam } from '../models/types';
import { decodeSafetensors, isFloatDtype, toFloat32, type DecodedSafetensors, type SafeTensor } from '../runs/safetensors';
import { copyCheckpoint, fromTorchLayout, readCheckpointFiles, saveCheckpoint, sidecarPath, torchShape } from '../runs/checkpoint';
import { writeJsonAtomic } from '../runs/atomic';
import { configHash } from '../runs/config-hash';
import { acquireRunLock } from '../runs/lock';
import { createRunLogger } from '../runs/logger';
import { runLayout } from '../runs/run-dir';
import { IMPORT_FORMAT, importedFilePath, type ImportedFile } from '../runs/imported-file';
import { openRun } from './open-run';
import { MAX_BUFFER_BYTES, readFileBounded } from '../engine/safe-read';

/** Kept in the checkpoint sidecar's trainer state of an imported run. */
export const importRecordSchema = z.object({ source: z.string(), sha256: z.string().regex(/^[0-9a-f]{64}$/) }).strict();
export type ImportRecord = z.infer<typeof importRecordSchema>;

/** Kept in the sidecar's trainer state of a run started with train.initFrom. */
export const initFromRecordSchema = z
  .object({
    /** The sidecar of the checkpoint the weights came from. */
    checkpoint: z.string(),
    /** SHA-256 of its weights file: what the run started from, even if that run changes later. */
    weightsSha256: z.string().regex(/^[0-9a-f]{64}$/),
    /** Epochs that checkpoint had completed. */
    epoch: z.number().int().min(0),
  })
  .strict();
export type InitFromRecord = z.infer<typeof initFromRecordSchema>;

export const README_SECTION = 'README.md, section "Models trained elsewhere"';

const PICKLE_NAME = /\.(pt|pth|pkl|pickle|ckpt|tar)$/i;

/** Refuse what torch.save writes, whatever its name, before trying to parse it. */
function pickleError(file: string, what: string): UserError {
  return new UserError(
    `${what}, not safetensors. ibrar never reads pickles (unpickling runs code from the file): ` +
      `convert the state_dict with safetensors.torch.save_file — the few lines of Python in ${README_SECTION} — and import the .safetensors file`,
    file,
  );
}

function pickleKind(buf: Uint8Array): string | null {
  // A safetensors file has its JSON header at byte 8.
  if (buf.length > 8 && buf[8] === 0x7b) return null;
  if (buf.length >= 4 && buf[0] === 0x50 && buf[1] === 0x4b && buf[2] === 0x03 && buf[3] === 0x04) return 'this is a zip archive (what torch.save writes since PyTorch 1.6)';
  if (buf.length >= 2 && buf[0] === 0x80 && buf[1] >= 2 && buf[1] <= 5) return 'this is a Python pickle (what torch.save writes)';
  return null;
}

/** Read and parse a safetensors weights file; a pickle gets the conversion message. */
export function readWeightsFile(file: string): { buf: Buffer; decoded: DecodedSafetensors } {
  let buf: Buffer;
  try {
    if (fs.statSync(file).isDirectory()) throw new UserError('expected a .safetensors file, found a directory', file);
    // A pipe or device is refused; the size is checked before a byte is allocated.
    buf = readFileBounded(file, { maxBytes: MAX_BUFFER_BYTES, what: 'weights file' });
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read the weights file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, file);
  }
  const kind = pickleKind(buf);
  if (kind) throw pickleError(file, kind);
  try {
    return { buf, decoded: decodeSafetensors(buf, file) };
  } catch (err) {
    if (err instanceof UserError && PICKLE_NAME.test(file)) throw pickleError(file, `this does not parse as safetensors (${err.message.slice(file.length + 2)}) and its name says PyTorch pickle`);
    throw err;
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function shapeText(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

export interface MatchedStateDict {
  updates: Array<{ p: NamedParam; values: Float32Array | Int32Array }>;
  /** Accepted and not loaded (num_batches_tracked). */
  ignored: string[];
  /** Tensors converted to float32, by their dtype in the file. */
  converted: Record<string, number>;
}

/** A few words about the model the names are checked against. */
function describeModel(model: Model, cfg?: ExperimentConfig['model']): string {
  const width = cfg && cfg.arch !== 'wrn' && cfg.width !== 1 ? ` width ${cfg.width}` : '';
  const wrn = cfg && cfg.arch === 'wrn' ? ` depth ${cfg.depth} widen ${cfg.widen}` : '';
  const [h, w, c] = model.inputShape;
  return `${model.arch}${width}${wrn}${cfg?.head === 'vib' ? ' with a VIB head' : ''}, ${model.numClasses} classes, ${h}×${w}×${c} inputs`;
}

/** DataParallel, torch.compile and wrapper modules prefix every name: say so when that is all. */
function prefixHint(unexpected: readonly string[], modelNames: ReadonlySet<string>): string {
  for (const prefix of ['module.', '_orig_mod.', 'model.', 'net.']) {
    const hits = unexpected.filter((n) => n.startsWith(prefix) && modelNames.has(n.slice(prefix.length))).length;
    if (hits > 0 && hits >= unexpected.length / 2) return `\nthe file's names carry a '${prefix}' prefix: strip it when converting (see ${README_SECTION})`;
  }
  return '';
}

/**
 * Check a state_dict (PyTorch layout) against a model: every parameter present with a
 * floating-point dtype, the model's shape and finite values; no other tensors but BatchNorm's
 * num_batches_tracked. Throws one UserError listing every problem; assigns nothing.
 */
export function matchStateDict(model: Model, tensors: ReadonlyMap<string, SafeTensor>, file: string, modelCfg?: ExperimentConfig['model']): MatchedStateDict {
  const params = new Map(model.params.map((p) => [p.name, p]));
  const bn = new Set(model.params.filter((p) => p.name.endsWith('.running_mean')).map((p) => p.name.slice(0, -'.running_mean'.length)));
  const missing: string[] = [];
  const unexpected: string[] = [];
  const wrongShape: string[] = [];
  const wrongDtype: string[] = [];
  const nonFinite: string[] = [];
  const ignored: string[] = [];
  const converted: Record<string, number> = {};
  const updates: MatchedStateDict['updates'] = [];
  for (const [name, t] of tensors) {
    if (params.has(name)) continue;
    const owner = name.endsWith('.num_batches_tracked') ? name.slice(0, -'.num_batches_tracked'.length) : null;
    if (owner !== null && bn.has(owner) && (t.dtype === 'I64' || t.dtype === 'I32') && t.data.length === 1) {
      ignored.push(name);
      continue;
    }
    unexpected.push(`${name} ${t.dtype} ${shapeText(t.shape)}`);
  }
  for (const p of model.params) {
    const isInt = p.variable.dtype === 'int32';
    const want = isInt ? [...p.variable.shape] : torchShape(p.variable.shape, p.kind);
    const t = tensors.get(p.name);
    if (!t) {
      missing.push(`${p.name} ${shapeText(want)}`);
      continue;
    }
    const dtypeOk = isInt ? t.dtype === 'I32' || t.dtype === 'I64' : isFloatDtype(t.dtype);
    if (!dtypeOk) wrongDtype.push(`${p.name}: ${t.dtype}, the model needs ${isInt ? 'I32 or I64' : 'F32 (or F16, BF16, F64)'}`);
    if (!sameShape(t.shape, want)) wrongShape.push(`${p.name}: ${shapeText(t.shape)}, the model needs ${shapeText(want)}`);
    if (!dtypeOk || !sameShape(t.shape, want)) continue;
    if (isInt) {
      const src = t.data as Int32Array | BigInt64Array;
      const values = new Int32Array(src.length);
      let ok = true;
      for (let i = 0; i < src.length; i++) {
        const v = Number(src[i]);
        if (v !== (v | 0)) ok = false;
        values[i] = v;
      }
      if (!ok) wrongDtype.push(`${p.name}: values beyond the int32 range`);
      else updates.push({ p, values });
      continue;
    }
    const f32 = toFloat32(t)!;
    if (t.dtype !== 'F32') converted[t.dtype] = (converted[t.dtype] ?? 0) + 1;
    if (!f32.every(Number.isFinite)) {
      nonFinite.push(`${p.name}${t.dtype === 'F64' ? ' (after rounding F64 to float32)' : ''}`);
      continue;
    }
    updates.push({ p, values: fromTorchLayout(f32, p.variable.shape, p.kind) });
  }
  const groups: Array<[string, string[]]> = [
    ['missing from the file', missing],
    ['in the file, not in the model', unexpected],
    ['wrong shape (PyTorch layout: conv [out, in, kh, kw], linear [out, in])', wrongShape],
    ['wrong dtype', wrongDtype],
    ['NaN or infinite values', nonFinite],
  ];
  const count = groups.reduce((n, [, list]) => n + list.length, 0);
  if (count > 0) {
    const lines = groups.filter(([, list]) => list.length > 0).map(([what, list]) => `${what} (${list.length}):\n    ${list.join('\n    ')}`);
    throw new UserError(
      `the tensors do not fit the model (${describeModel(model, modelCfg)}): ${count} problem${count === 1 ? '' : 's'}, nothing written\n  ` +
        lines.join('\n  ') +
        prefixHint(unexpected.map((u) => u.split(' ')[0]), new Set(params.keys())),
      file,
    );
  }
  return { updates, ignored, converted };
}

function assign(updates: MatchedStateDict['updates']): void {
  for (const { p, values } of updates) tf.tidy(() => p.variable.assign(tf.tensor(values, p.variable.shape, p.variable.dtype)));
}

function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

// ---------------------------------------------------------------- ibrar import

export interface ImportRequest {
  weightsFile: string;
  /** The resolved config describing the model (and its data); `--name` already applied. */
  cfg: ExperimentConfig;
  /** The YAML file `cfg` came from (named in errors about its values). */
  configFile?: string;
  onNote?: (message: string) => void;
}

export interface ImportResult {
  runDir: string;
  imported: ImportedFile;
}

/** Check the weights against the config's model, then write the run directory. */
export async function importWeights(req: ImportRequest): Promise<ImportResult> {
  const file = path.resolve(req.weightsFile);
  // The file first: a pickle or a damaged file should not wait for a dataset to load.
  const { buf, decoded } = readWeightsFile(file);
  const run = await openRun({ kind: 'new', cfg: req.cfg, configFile: req.configFile }, { onNote: req.onNote });
  try {
    const cfg = run.cfg;
    const matched = matchStateDict(run.model, decoded.tensors, file, cfg.model);
    assign(matched.updates);
    const record: ImportRecord = { source: file, sha256: sha256(buf) };
    const imported: ImportedFile = {
      format: IMPORT_FORMAT,
      ...record,
      bytes: buf.length,
      importedAt: new Date().toISOString(),
      tensors: decoded.tensors.size,
      converted: matched.converted,
      ignored: matched.ignored,
      metadata: decoded.metadata,
    };
    // From here on the run directory is written to.
    const layout = run.createDir();
    const lock = acquireRunLock(layout);
    const log = createRunLogger(layout);
    try {
      writeJsonAtomic(importedFilePath(layout.dir), imported);
      // At the config's last epoch: the run is complete (a `train --resume` has nothing to do);
      // no optimizer state, no metrics. `best` is the same weights (there is nothing to rank).
      await saveCheckpoint(layout.checkpoints, 'last', {
        params: run.model.params,
        sidecar: {
          arch: cfg.model.arch,
          epoch: cfg.train.epochs,
          step: 0,
          globalStep: 0,
          rngState: {},
          configHash: configHash(cfg),
          configFileSha256: sha256(readFileBounded(layout.config, { maxBytes: MAX_CONFIG_BYTES, what: 'config' })),
          metrics: {},
          state: { optimizerStarted: false, bestTestAcc: -1, accumulator: null, forced: [], imported: record },
        },
      });
      copyCheckpoint(layout.checkpoints, 'last', 'best');
      log.info({ imported }, 'weights imported');
    } finally {
      await log.close();
      lock.release();
    }
    return { runDir: layout.dir, imported };
  } finally {
    run.dispose();
  }
}

// ---------------------------------------------------------------- train --init-from

/** `train.initFrom` as saved: absolute (relative to the working directory). */
export function resolveInitFromPath(ref: string): string {
  return path.resolve(ref);
}

/** A run directory (its `last` checkpoint) or a checkpoint sidecar (`…/checkpoints/<tag>.json`). */
function initFromTarget(ref: string): { dir: string; tag: string; runDir: string } {
  const abs = path.resolve(ref);
  if (abs.endsWith('.json')) {
    if (!fs.existsSync(abs)) throw new UserError('no such checkpoint sidecar', abs);
    return { dir: path.dirname(abs), tag: path.basename(abs, '.json'), runDir: path.dirname(path.dirname(abs)) };
  }
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) throw new UserError('expected a run directory or a checkpoint sidecar (…/checkpoints/best.json)', abs);
  const layout = runLayout(abs);
  if (!fs.existsSync(layout.config)) throw new UserError('not a run directory (config.yaml missing)', abs);
  return { dir: layout.checkpoints, tag: 'last', runDir: abs };
}

/**
 * Load another run's checkpoint into `model` (weights and BatchNorm statistics; not its
 * optimizer state, position or channel mask), after checking its files' hashes, its
 * architecture and every tensor against the model. Nothing is assigned unless all of it fits.
 */
export function initFromCheckpoint(model: Model, ref: string, opts: { modelCfg?: ExperimentConfig['model']; onNote?: (m: string) => void } = {}): InitFromRecord {
  const where = 'train.initFrom';
  try {
    const { dir, tag, runDir } = initFromTarget(ref);
    const { sidecar, weights } = readCheckpointFiles(dir, tag);
    const sc = sidecarPath(dir, tag);
    if (sidecar.arch !== model.arch) throw new UserError(`the checkpoint is a ${sidecar.arch}, this run trains a ${model.arch}`, sc, 'arch');
    const matched = matchStateDict(model, weights, path.join(dir, sidecar.files.weights.file), opts.modelCfg);
    assign(matched.updates);
    try {
      const source = loadConfig(runLayout(runDir).config).model;
      if (opts.modelCfg && JSON.stringify(source.normalize) !== JSON.stringify(opts.modelCfg.normalize)) {
        opts.onNote?.(`note: ${runDir} was trained with model.normalize ${JSON.stringify(source.normalize)}, this run uses ${JSON.stringify(opts.modelCfg.normalize)}`);
      }
    } catch {
      // A sidecar outside a run directory: nothing to compare with.
    }
    return { checkpoint: sc, weightsSha256: sidecar.files.weights.sha256, epoch: sidecar.epoch };
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`cannot start from this checkpoint: ${err.message}`, undefined, where);
    throw err;
  }
}
