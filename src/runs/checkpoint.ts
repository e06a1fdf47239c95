// Checkpoints: model weights and BatchNorm buffers in PyTorch layout (safetensors), optimizer
// slots in a second safetensors file, and a JSON sidecar with the training position.
//
// Files for tag `last` in the checkpoint directory:
//   last.json                         the sidecar; writing it is the commit point
//   last.<sha12>.safetensors          weights, named by content; what the sidecar points at
//   last.<sha12>.optim.safetensors    optimizer slots (when given)
//   last.safetensors, last.optim.safetensors
//                                     hard links (or copies) to the committed files, refreshed
//                                     after each commit, for `safetensors.torch.load_file`
//
// Why content-named data files: overwriting `last.safetensors` in place would leave a window
// (after the data rename, before the sidecar rename) where the old sidecar points at new data.
// With content names a crash at any moment leaves the previous sidecar and the files it
// names intact, so the previous checkpoint stays loadable; leftovers are cleaned on the
// next save. Every file goes through temp + fsync + rename (src/runs/atomic.ts), and the
// sidecar stores each file's SHA-256, checked on load.
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { z } from 'zod';
import { tf } from '../engine/tf';
import { UserError } from '../errors';
import { makeDirs, MIB, readFileBounded, readTextBoundedOrNull, statRegularFile } from '../engine/safe-read';
import type { NamedParam, ParamKind } from '../models/types';
import { decodeSafetensors, encodeSafetensors, type NamedSafeTensor, type SafeTensor } from './safetensors';
import { fsyncDir, removeStaleTempFiles, tempPathFor, writeFileAtomic, writeJsonAtomic } from './atomic';

export const CHECKPOINT_FORMAT = 'ibrar-checkpoint/1';
/** A sidecar holds names, numbers and a channel mask: far below this. */
export const MAX_SIDECAR_BYTES = 16 * MIB;

const u32 = z.number().int().min(0).max(0xffffffff);
const fileRef = z
  .object({
    /** File name inside the checkpoint directory. */
    file: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'a plain file name'),
    bytes: z.number().int().min(0),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits'),
  })
  .strict();

/** The sidecar `<tag>.json`. JSON cannot hold NaN/±Infinity: metrics store them as null and read back as NaN. */
export const checkpointSidecarSchema = z
  .object({
    format: z.literal(CHECKPOINT_FORMAT),
    tag: z.string(),
    arch: z.string(),
    /** Completed epochs. */
    epoch: z.number().int().min(0),
    /** Steps done inside the current epoch (0 at an epoch boundary; >0 for mid-epoch recovery). */
    step: z.number().int().min(0),
    globalStep: z.number().int().min(0),
    /** Named RNG streams (`Rng.getState()`), so a resumed run continues each stream. */
    rngState: z.record(z.tuple([u32, u32, u32, u32])),
    /** configHash() of the resolved config the run was started with. */
    configHash: z.string(),
    /** SHA-256 of the run's config.yaml as written; resume refuses a changed file (absent in older checkpoints). */
    configFileSha256: z.string().regex(/^[0-9a-f]{64}$/, '64 lowercase hex digits').optional(),
    metrics: z.record(z.number().nullable().transform((v) => (v === null ? NaN : v))),
    /** Channel mask (one 0/1 entry per channel of the mask tap) to apply at eval, if any. */
    mask: z.array(z.number()).optional(),
    /** Anything else the trainer needs to resume (scheduler state, best metric...). JSON only. */
    state: z.record(z.unknown()).optional(),
    /** Weight tensor names, in model order. */
    tensors: z.array(z.string()),
    /** Optimizer slot names with the layout kind used to export them. */
    optimizer: z.array(z.object({ name: z.string(), kind: z.enum(['conv', 'linear', 'vector']) }).strict()),
    files: z.object({ weights: fileRef, optimizer: fileRef.nullable() }).strict(),
    createdAt: z.string(),
  })
  .strict();

export type CheckpointSidecar = z.infer<typeof checkpointSidecarSchema>;
export type CheckpointFileRef = z.infer<typeof fileRef>;

/** What the caller supplies; the rest of the sidecar is filled in by saveCheckpoint. */
export type CheckpointInfo = Pick<
  CheckpointSidecar,
  'arch' | 'epoch' | 'step' | 'globalStep' | 'rngState' | 'configHash' | 'configFileSha256' | 'metrics' | 'mask' | 'state'
>;

/** One optimizer slot (e.g. `<param>.momentum_buffer`), data in tfjs layout. */
export interface OptimizerSlot {
  name: string;
  data: Float32Array;
  shape: number[];
  /** Layout kind; when omitted, taken from the param whose name + '.' prefixes the slot name. */
  kind?: ParamKind;
}

export interface SaveCheckpointInput {
  params: readonly NamedParam[];
  optimizerState?: readonly OptimizerSlot[];
  sidecar: CheckpointInfo;
}

export interface LoadedCheckpoint {
  sidecar: CheckpointSidecar;
  /** Optimizer slots back in tfjs layout (empty when the checkpoint has none). */
  optimizerState: OptimizerSlot[];
}

const TAG_RE = /^[A-Za-z0-9_-]+$/;

function checkTag(tag: string): void {
  if (!TAG_RE.test(tag)) throw new UserError(`checkpoint tag must be letters, digits, '_' or '-', found '${tag}'`);
}

export function sidecarPath(dir: string, tag: string): string {
  return path.join(dir, `${tag}.json`);
}

/** The convenience (non-committed) names, for users and PyTorch. */
export function checkpointPaths(dir: string, tag: string): { sidecar: string; weights: string; optimizer: string } {
  return {
    sidecar: sidecarPath(dir, tag),
    weights: path.join(dir, `${tag}.safetensors`),
    optimizer: path.join(dir, `${tag}.optim.safetensors`),
  };
}

// ---------------------------------------------------------------- layout conversion (pure)

/** The PyTorch shape of a tfjs-layout parameter. */
export function torchShape(shape: readonly number[], kind: ParamKind): number[] {
  if (kind === 'conv') {
    if (shape.length !== 4) throw new Error(`conv parameter must be rank 4 [kh, kw, in, out], got [${shape.join(', ')}]`);
    const [kh, kw, ci, co] = shape;
    return [co, ci, kh, kw];
  }
  if (kind === 'linear') {
    if (shape.length !== 2) throw new Error(`linear parameter must be rank 2 [in, out], got [${shape.join(', ')}]`);
    return [shape[1], shape[0]];
  }
  return [...shape];
}

/** The tfjs shape of a PyTorch-layout parameter (inverse of torchShape). */
export function tfjsShape(shape: readonly number[], kind: ParamKind): number[] {
  if (kind === 'conv') {
    if (shape.length !== 4) throw new Error(`conv parameter must be rank 4 [out, in, kh, kw], got [${shape.join(', ')}]`);
    const [co, ci, kh, kw] = shape;
    return [kh, kw, ci, co];
  }
  if (kind === 'linear') {
    if (shape.length !== 2) throw new Error(`linear parameter must be rank 2 [out, in], got [${shape.join(', ')}]`);
    return [shape[1], shape[0]];
  }
  return [...shape];
}

/**
 * For each element of a tfjs-layout tensor (index in tfjs order), its index in PyTorch order:
 * conv [kh,kw,in,out] ↔ [out,in,kh,kw], linear [in,out] ↔ [out,in], vectors unchanged.
 */
function torchIndexMap(shape: readonly number[], kind: ParamKind): Int32Array | null {
  if (kind === 'vector') return null;
  const size = shape.reduce((a, b) => a * b, 1);
  const map = new Int32Array(size);
  if (kind === 'conv') {
    const [kh, kw, ci, co] = shape;
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) map[((y * kw + x) * ci + i) * co + o] = ((o * ci + i) * kh + y) * kw + x;
  } else {
    const [ni, no] = shape;
    for (let i = 0; i < ni; i++) for (let o = 0; o < no; o++) map[i * no + o] = o * ni + i;
  }
  return map;
}

/** tfjs [kh,kw,in,out] → PyTorch [out,in,kh,kw]; [in,out] → [out,in]; vectors copied. */
export function toTorchLayout(data: Float32Array, shape: readonly number[], kind: ParamKind): Float32Array {
  const map = torchIndexMap(shape, kind);
  if (!map) return Float32Array.from(data);
  const out = new Float32Array(data.length);
  for (let k = 0; k < map.length; k++) out[map[k]] = data[k];
  return out;
}

/** Inverse of toTorchLayout; `shape` is the tfjs shape wanted. */
export function fromTorchLayout(data: Float32Array, shape: readonly number[], kind: ParamKind): Float32Array {
  const map = torchIndexMap(shape, kind);
  if (!map) return Float32Array.from(data);
  const out = new Float32Array(data.length);
  for (let k = 0; k < map.length; k++) out[k] = data[map[k]];
  return out;
}

// ---------------------------------------------------------------- save

function sha256(buf: Uint8Array): string {
  return createHash('sha256').update(buf).digest('hex');
}

function slotKind(slot: OptimizerSlot, params: readonly NamedParam[]): ParamKind {
  if (slot.kind) return slot.kind;
  let best: NamedParam | null = null;
  for (const p of params) {
    if (slot.name.startsWith(p.name + '.') && (!best || p.name.length > best.name.length)) best = p;
  }
  if (best) return best.kind;
  if (slot.shape.length <= 1) return 'vector';
  throw new Error(`optimizer slot '${slot.name}' matches no parameter name and has no kind: cannot pick its layout`);
}

async function paramTensor(p: NamedParam): Promise<NamedSafeTensor> {
  const v = p.variable;
  if (v.dtype !== 'int32' && v.dtype !== 'float32') throw new Error(`parameter '${p.name}' has dtype ${v.dtype}; checkpoints hold float32 and int32`);
  // `await data()`: backends without synchronous reads (webgpu) write checkpoints too.
  const values = await v.data();
  if (v.dtype === 'int32') return { name: p.name, dtype: 'I32', shape: [...v.shape], data: Int32Array.from(values as Int32Array) };
  return { name: p.name, dtype: 'F32', shape: torchShape(v.shape, p.kind), data: toTorchLayout(values as Float32Array, v.shape, p.kind) };
}

/**
 * Save a checkpoint under `tag` in `dir` (created if needed); resolves to the committed
 * sidecar. The weights are read (asynchronously) before any file is written.
 */
export async function saveCheckpoint(dir: string, tag: string, input: SaveCheckpointInput): Promise<CheckpointSidecar> {
  checkTag(tag);
  const { params, optimizerState = [], sidecar } = input;
  const weights = await Promise.all(params.map(paramTensor));
  const slots: Array<{ name: string; kind: ParamKind }> = [];
  const optTensors: NamedSafeTensor[] = optimizerState.map((s) => {
    const kind = slotKind(s, params);
    slots.push({ name: s.name, kind });
    return { name: s.name, dtype: 'F32', shape: torchShape(s.shape, kind), data: toTorchLayout(s.data, s.shape, kind) };
  });
  const meta = { format: 'pt', producer: 'ibrar', arch: sidecar.arch };
  const weightsBuf = encodeSafetensors(weights, meta);
  const optimBuf = optimizerState.length > 0 ? encodeSafetensors(optTensors, { ...meta, content: 'optimizer' }) : null;
  return commit(dir, tag, weightsBuf, optimBuf, {
    ...sidecar,
    tensors: weights.map((t) => t.name),
    optimizer: slots,
    createdAt: new Date().toISOString(),
  });
}

type SidecarBody = Omit<CheckpointSidecar, 'format' | 'tag' | 'files'>;

const COMMITTED_RE = (tag: string) => new RegExp(`^${tag}\\.[0-9a-f]{12}(\\.optim)?\\.safetensors$`);

function commit(dir: string, tag: string, weightsBuf: Buffer, optimBuf: Buffer | null, body: SidecarBody): CheckpointSidecar {
  makeDirs(dir);
  removeStaleTempFiles(dir, (target) => target.startsWith(`${tag}.`));
  const ref = (buf: Buffer, suffix: string): CheckpointFileRef => {
    const hash = sha256(buf);
    return { file: `${tag}.${hash.slice(0, 12)}${suffix}`, bytes: buf.length, sha256: hash };
  };
  const weightsRef = ref(weightsBuf, '.safetensors');
  const optimRef = optimBuf ? ref(optimBuf, '.optim.safetensors') : null;
  writeFileAtomic(path.join(dir, weightsRef.file), weightsBuf);
  if (optimBuf && optimRef) writeFileAtomic(path.join(dir, optimRef.file), optimBuf);

  const full: CheckpointSidecar = {
    format: CHECKPOINT_FORMAT,
    tag,
    ...body,
    files: { weights: weightsRef, optimizer: optimRef },
  };
  // Commit point: from here on the new checkpoint is the one `tag` names.
  writeJsonAtomic(sidecarPath(dir, tag), full);

  const paths = checkpointPaths(dir, tag);
  linkAtomic(path.join(dir, weightsRef.file), paths.weights);
  if (optimRef) linkAtomic(path.join(dir, optimRef.file), paths.optimizer);
  else fs.rmSync(paths.optimizer, { force: true });
  const keep = new Set([weightsRef.file, optimRef?.file]);
  const committed = COMMITTED_RE(tag);
  for (const name of fs.readdirSync(dir)) {
    if (committed.test(name) && !keep.has(name)) fs.rmSync(path.join(dir, name), { force: true });
  }
  fsyncDir(dir);
  return full;
}

/**
 * After a kill between a checkpoint's commit and its last steps: remove temp files of dead
 * writers, and make the plain-named files (`last.safetensors`, …) the data the committed
 * sidecar names again (a kill there leaves them pointing at the previous checkpoint's data).
 */
export function repairCheckpointDir(dir: string): void {
  removeStaleTempFiles(dir);
  for (const tag of ['last', 'best']) {
    let sidecar: CheckpointSidecar;
    try {
      sidecar = readCheckpointSidecar(dir, tag);
    } catch {
      continue;
    }
    const paths = checkpointPaths(dir, tag);
    const same = (committed: string, plain: string) => {
      try {
        const a = fs.statSync(path.join(dir, committed));
        const b = fs.statSync(plain);
        return (a.ino === b.ino && a.dev === b.dev) || (a.size === b.size && sha256(fs.readFileSync(plain)) === sha256(fs.readFileSync(path.join(dir, committed))));
      } catch {
        return false;
      }
    };
    if (fs.existsSync(path.join(dir, sidecar.files.weights.file)) && !same(sidecar.files.weights.file, paths.weights)) linkAtomic(path.join(dir, sidecar.files.weights.file), paths.weights);
    const opt = sidecar.files.optimizer;
    if (opt && fs.existsSync(path.join(dir, opt.file)) && !same(opt.file, paths.optimizer)) linkAtomic(path.join(dir, opt.file), paths.optimizer);
  }
}

/** Make `dst` the same file as `src` (hard link, else copy) by an atomic rename. */
function linkAtomic(src: string, dst: string): void {
  const tmp = tempPathFor(dst);
  try {
    try {
      fs.linkSync(src, tmp);
    } catch {
      fs.copyFileSync(src, tmp);
    }
    fs.renameSync(tmp, dst);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}

// ---------------------------------------------------------------- load

/** Read and validate `<tag>.json` (structure only; files are checked by readCheckpointFiles). */
export function readCheckpointSidecar(dir: string, tag: string): CheckpointSidecar {
  checkTag(tag);
  const file = sidecarPath(dir, tag);
  // Bounded: a regular file of at most MAX_SIDECAR_BYTES, never a pipe or a device.
  const text = readTextBoundedOrNull(file, { maxBytes: MAX_SIDECAR_BYTES, what: 'checkpoint sidecar' });
  if (text === null) {
    const orphan = fs.existsSync(checkpointPaths(dir, tag).weights);
    throw new UserError(
      orphan
        ? `no checkpoint '${tag}': the sidecar is missing although ${tag}.safetensors exists (it was deleted or moved: without it the data cannot be verified)`
        : `no checkpoint '${tag}' in ${dir}`,
      file,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UserError(`sidecar is not valid JSON (${(err as Error).message})`, file);
  }
  const parsed = checkpointSidecarSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new UserError(`invalid checkpoint sidecar: ${issue.message}`, file, issue.path.join('.') || undefined);
  }
  if (parsed.data.tag !== tag) throw new UserError(`sidecar says tag '${parsed.data.tag}', expected '${tag}'`, file, 'tag');
  return parsed.data;
}

/** Read a file the sidecar names and check its size and SHA-256. */
function readVerified(dir: string, ref: CheckpointFileRef, sidecarFile: string): Buffer {
  const file = path.join(dir, ref.file);
  // The size is checked from the file's stat before anything is read: the read is bounded by
  // what the sidecar records (and refuses pipes and devices).
  const st = statRegularFile(file, 'checkpoint file');
  if (!st) throw new UserError(`checkpoint file named by ${path.basename(sidecarFile)} cannot be read (ENOENT)`, file);
  if (st.size !== ref.bytes) throw new UserError(`file is ${st.size} bytes, the sidecar records ${ref.bytes}: truncated or replaced`, file);
  const buf = readFileBounded(file, { maxBytes: ref.bytes, what: 'checkpoint file' });
  const got = sha256(buf);
  if (got !== ref.sha256) {
    throw new UserError(`SHA-256 ${got} does not match the sidecar's ${ref.sha256}: the file is corrupt or was modified`, file);
  }
  return buf;
}

/** Verify a checkpoint's files against its sidecar and decode them (no model needed). */
export function readCheckpointFiles(
  dir: string,
  tag: string,
): { sidecar: CheckpointSidecar; weights: Map<string, SafeTensor>; optimizer: Map<string, SafeTensor> } {
  const sidecar = readCheckpointSidecar(dir, tag);
  const sc = sidecarPath(dir, tag);
  const wFile = path.join(dir, sidecar.files.weights.file);
  const weights = decodeSafetensors(readVerified(dir, sidecar.files.weights, sc), wFile).tensors;
  sameNames([...weights.keys()], sidecar.tensors, wFile, 'weights');
  let optimizer = new Map<string, SafeTensor>();
  if (sidecar.files.optimizer) {
    const oFile = path.join(dir, sidecar.files.optimizer.file);
    optimizer = decodeSafetensors(readVerified(dir, sidecar.files.optimizer, sc), oFile).tensors;
    sameNames([...optimizer.keys()], sidecar.optimizer.map((s) => s.name), oFile, 'optimizer slots');
  } else if (sidecar.optimizer.length > 0) {
    throw new UserError(`sidecar lists ${sidecar.optimizer.length} optimizer slots but no optimizer file`, sc, 'files.optimizer');
  }
  return { sidecar, weights, optimizer };
}

function sameNames(inFile: string[], listed: string[], file: string, what: string): void {
  const a = new Set(inFile);
  const b = new Set(listed);
  const missing = listed.find((n) => !a.has(n));
  if (missing !== undefined) throw new UserError(`${what}: tensor listed in the sidecar is missing from the file`, file, `tensor '${missing}'`);
  const extra = inFile.find((n) => !b.has(n));
  if (extra !== undefined) throw new UserError(`${what}: tensor in the file is not listed in the sidecar`, file, `tensor '${extra}'`);
}

/** What a checkpoint loads into: a Model fits. arch null skips the architecture-name check. */
export interface CheckpointTarget {
  readonly arch: string | null;
  readonly params: readonly NamedParam[];
}

function isParamList(t: CheckpointTarget | readonly NamedParam[]): t is readonly NamedParam[] {
  return Array.isArray(t);
}

/**
 * Load checkpoint `tag` into the model's variables. Pass the Model (or {arch, params}) to also
 * check the architecture name; a bare params list is checked by names and shapes only. Everything is validated first (sidecar,
 * sizes and hashes, architecture, every parameter's presence, dtype and shape, no extras);
 * nothing is assigned unless all of it passes. Returns the sidecar and the optimizer slots.
 */
export function loadCheckpoint(
  dir: string,
  tag: string,
  target: CheckpointTarget | readonly NamedParam[],
): LoadedCheckpoint {
  const model: CheckpointTarget = isParamList(target) ? { arch: null, params: target } : target;
  const sc = sidecarPath(dir, tag);
  const sidecar = readCheckpointSidecar(dir, tag);
  if (model.arch !== null && sidecar.arch !== model.arch) {
    throw new UserError(`checkpoint is for architecture '${sidecar.arch}', the model is '${model.arch}'`, sc, 'arch');
  }
  const { weights, optimizer } = readCheckpointFiles(dir, tag);
  const wFile = path.join(dir, sidecar.files.weights.file);

  const updates: Array<{ p: NamedParam; values: Float32Array | Int32Array }> = [];
  const expectedNames = new Set(model.params.map((p) => p.name));
  for (const name of weights.keys()) {
    if (!expectedNames.has(name)) {
      throw new UserError(`the model${model.arch ? ` (${model.arch})` : ''} has no parameter of this name: checkpoint from a different architecture or config?`, wFile, `tensor '${name}'`);
    }
  }
  for (const p of model.params) {
    const t = weights.get(p.name);
    const at = `tensor '${p.name}'`;
    if (!t) throw new UserError(`parameter missing from the checkpoint: checkpoint from a different architecture or config?`, wFile, at);
    const isInt = p.variable.dtype === 'int32';
    const wantDtype = isInt ? 'I32' : 'F32';
    if (t.dtype !== wantDtype) throw new UserError(`dtype ${t.dtype}, the model needs ${wantDtype}`, wFile, at);
    const want = isInt ? [...p.variable.shape] : torchShape(p.variable.shape, p.kind);
    if (!sameShape(t.shape, want)) {
      throw new UserError(
        `shape [${t.shape.join(', ')}], the model needs [${want.join(', ')}] (PyTorch layout): checkpoint from a different architecture or config?`,
        wFile,
        at,
      );
    }
    const values = isInt ? (t.data as Int32Array) : fromTorchLayout(t.data as Float32Array, p.variable.shape, p.kind);
    updates.push({ p, values });
  }

  const optimizerState: OptimizerSlot[] = [];
  if (sidecar.files.optimizer) {
    const oFile = path.join(dir, sidecar.files.optimizer.file);
    for (const slot of sidecar.optimizer) {
      const t = optimizer.get(slot.name)!;
      const at = `tensor '${slot.name}'`;
      if (t.dtype !== 'F32') throw new UserError(`dtype ${t.dtype}, optimizer slots are F32`, oFile, at);
      let shape: number[];
      try {
        shape = tfjsShape(t.shape, slot.kind);
      } catch (err) {
        throw new UserError((err as Error).message, oFile, at);
      }
      optimizerState.push({ name: slot.name, kind: slot.kind, shape, data: fromTorchLayout(t.data as Float32Array, shape, slot.kind) });
    }
  }

  for (const { p, values } of updates) {
    tf.tidy(() => p.variable.assign(tf.tensor(values, p.variable.shape, p.variable.dtype)));
  }
  return { sidecar, optimizerState };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

// ---------------------------------------------------------------- list / copy

export interface CheckpointListing {
  tag: string;
  /** true when the sidecar is valid and its files exist with the recorded sizes (and hashes, with verify). */
  complete: boolean;
  sidecar: CheckpointSidecar | null;
  /** Why it is not complete. */
  problem?: string;
}

/**
 * Checkpoints in a checkpoint directory (e.g. runLayout(run).checkpoints), sorted by tag.
 * A tag with data files but no sidecar is listed as incomplete (an interrupted first save).
 * `verify` also checks SHA-256 (reads every file).
 */
export function listCheckpoints(dir: string, opts: { verify?: boolean } = {}): CheckpointListing[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const tags = new Set<string>();
  for (const name of names) {
    const m = /^([A-Za-z0-9_-]+)\.(json|safetensors|[0-9a-f]{12}(?:\.optim)?\.safetensors|optim\.safetensors)$/.exec(name);
    if (m) tags.add(m[1]);
  }
  const out: CheckpointListing[] = [];
  for (const tag of [...tags].sort()) {
    try {
      const sidecar = readCheckpointSidecar(dir, tag);
      if (opts.verify) readCheckpointFiles(dir, tag);
      else {
        for (const ref of [sidecar.files.weights, sidecar.files.optimizer]) {
          if (!ref) continue;
          const file = path.join(dir, ref.file);
          const size = fs.existsSync(file) ? fs.statSync(file).size : -1;
          if (size !== ref.bytes) throw new UserError(size < 0 ? 'file is missing' : `file is ${size} bytes, the sidecar records ${ref.bytes}`, file);
        }
      }
      out.push({ tag, complete: true, sidecar });
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      out.push({ tag, complete: false, sidecar: null, problem: err.message });
    }
  }
  return out;
}

/** Copy checkpoint `fromTag` to `toTag` (verified first, committed atomically like a save). */
export function copyCheckpoint(dir: string, fromTag: string, toTag: string): CheckpointSidecar {
  checkTag(toTag);
  const src = readCheckpointSidecar(dir, fromTag);
  const sc = sidecarPath(dir, fromTag);
  const weightsBuf = readVerified(dir, src.files.weights, sc);
  const optimBuf = src.files.optimizer ? readVerified(dir, src.files.optimizer, sc) : null;
  const { format: _f, tag: _t, files: _files, ...body } = src;
  return commit(dir, toTag, weightsBuf, optimBuf, body);
}
