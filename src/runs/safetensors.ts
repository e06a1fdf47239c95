// The safetensors file format (https://huggingface.co/docs/safetensors), read and written
// without dependencies so checkpoints open in PyTorch with `safetensors.torch.load_file`.
//
//   [u64 little-endian N] [N bytes of UTF-8 JSON header, space-padded to a multiple of 8] [data]
//   header = {"__metadata__": {str: str}, "<name>": {"dtype", "shape", "data_offsets": [b, e]}}
//
// Offsets are relative to the start of the data section. The writer follows the reference
// implementation's layout byte for byte: tensors ordered by descending dtype alignment
// (the reference's Dtype enum order), then by name; compact JSON with `__metadata__` first and
// the tensors in data order; padding with spaces so the data starts 8-byte aligned.
// The reader trusts nothing: it is pure parsing and validates the whole header before it
// touches any tensor data.
import { UserError } from '../errors';

export const DTYPES = ['U8', 'I32', 'F16', 'BF16', 'F32', 'F64', 'I64'] as const;
export type Dtype = (typeof DTYPES)[number];

/** F16 and BF16 are kept as their raw 16-bit patterns (Uint16Array); `toFloat32` converts them. */
export type TensorData = Uint8Array | Uint16Array | Int32Array | Float32Array | Float64Array | BigInt64Array;

export interface SafeTensor {
  dtype: Dtype;
  shape: number[];
  data: TensorData;
}

export interface NamedSafeTensor extends SafeTensor {
  name: string;
}

export interface DecodedSafetensors {
  /** In file (data offset) order. */
  tensors: Map<string, SafeTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<Dtype, number> = { U8: 1, I32: 4, F16: 2, BF16: 2, F32: 4, F64: 8, I64: 8 };
/** Position in the reference's `Dtype` enum ("increasing alignment order"); the writer sorts by it descending. */
const RANK: Record<Dtype, number> = { U8: 1, F16: 7, BF16: 8, I32: 9, F32: 11, F64: 12, I64: 13 };
const CTOR = {
  U8: Uint8Array,
  I32: Int32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
} as const;

/** The reference reader's limit on the header size. */
export const MAX_HEADER_BYTES = 100_000_000;
/**
 * Tensors per file, at most. A WRN-70-16 has under 1,000 parameters and buffers, a large
 * language model a few thousand; a header listing more is refused before it is parsed.
 */
export const MAX_TENSORS = 1 << 14;

export function dtypeBytes(dtype: Dtype): number {
  return BYTES[dtype];
}

export function isDtype(s: unknown): s is Dtype {
  return typeof s === 'string' && (DTYPES as readonly string[]).includes(s);
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The raw little-endian bytes of a typed array (a view when the host is little-endian). */
function leBytes(data: TensorData): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const width = data.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN || width === 1) return view;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += width) for (let j = 0; j < width; j++) out[i + j] = view[i + width - 1 - j];
  return out;
}

function checkTensorForWrite(t: NamedSafeTensor): void {
  if (!isDtype(t.dtype)) throw new Error(`safetensors: tensor '${t.name}' has unsupported dtype ${String(t.dtype)}`);
  if (!(t.data instanceof CTOR[t.dtype])) {
    throw new Error(`safetensors: tensor '${t.name}' is ${t.dtype} but its data is a ${t.data.constructor.name}`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`safetensors: tensor '${t.name}' has invalid shape [${t.shape.join(', ')}]`);
  }
  if (numel(t.shape) !== t.data.length) {
    throw new Error(`safetensors: tensor '${t.name}' shape [${t.shape.join(', ')}] needs ${numel(t.shape)} values, got ${t.data.length}`);
  }
  if (t.name === '__metadata__') throw new Error(`safetensors: '__metadata__' is reserved and cannot name a tensor`);
}

/** Serialise tensors (and optional string metadata) into one safetensors file image. */
export function encodeSafetensors(tensors: readonly NamedSafeTensor[], metadata?: Record<string, string>): Buffer {
  const seen = new Set<string>();
  for (const t of tensors) {
    checkTensorForWrite(t);
    if (seen.has(t.name)) throw new Error(`safetensors: duplicate tensor name '${t.name}'`);
    seen.add(t.name);
  }
  const ordered = [...tensors].sort(
    (a, b) => RANK[b.dtype] - RANK[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
  // Built by hand (not JSON.stringify of an object) so key order never depends on JS object
  // semantics: integer-like tensor names would otherwise be moved to the front.
  const entries: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const meta = Object.entries(metadata).map(([k, v]) => {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata value for '${k}' must be a string`);
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    entries.push(`"__metadata__":{${meta.join(',')}}`);
  }
  let offset = 0;
  for (const t of ordered) {
    const end = offset + t.data.byteLength;
    entries.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + headerLen + offset);
  out.writeBigUInt64LE(BigInt(headerLen), 0);
  json.copy(out, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const t of ordered) {
    out.set(leBytes(t.data), pos);
    pos += t.data.byteLength;
  }
  return out;
}

/**
 * The top-level keys of a JSON object text, in order, duplicates included (JSON.parse
 * silently keeps the last of a duplicated key), in one linear pass; null as soon as there
 * are more than `max` besides `__metadata__` (the caller refuses the header unparsed). Safe on any text:
 * an unterminated string ends the scan.
 */
function topLevelKeys(text: string, max: number): string[] | null {
  const keys: string[] = [];
  let depth = 0;
  let i = 0;
  let expectKey = false;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < n && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \\ */ ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = text.slice(i, j + 1);
        if (keys.length >= max && key !== '"__metadata__"') return null;
        keys.push(key);
      }
      expectKey = false;
      i = j + 1;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      expectKey = c === 0x7b && depth === 1;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) depth--;
    else if (c === 0x2c /* , */ && depth === 1) expectKey = true;
    i++;
  }
  return keys;
}

function isNonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

interface Entry {
  name: string;
  dtype: Dtype;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parse and validate a safetensors file image. `file` names the file in error messages.
 * Throws UserError (naming the file, the tensor and the field or byte offset) on anything
 * malformed: the header is validated completely before any data is read.
 */
export function decodeSafetensors(buf: Uint8Array, file: string): DecodedSafetensors {
  const fail = (msg: string, where: string): never => {
    throw new UserError(msg, file, where);
  };
  if (buf.byteLength < 8) fail(`file is ${buf.byteLength} bytes, too short for the 8-byte header length`, 'byte 0');
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const n64 = b.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER_BYTES)) fail(`header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit`, 'byte 0');
  const n = Number(n64);
  if (8 + n > b.length) fail(`header length ${n} runs past the end of the file (${b.length} bytes): truncated or not a safetensors file`, 'byte 0');
  const headerBytes = b.subarray(8, 8 + n);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    return fail('header is not valid UTF-8', 'byte 8');
  }
  // Counted before parsing (one linear scan), so a header of a million entries costs a scan.
  const rawKeys = topLevelKeys(text.trim(), MAX_TENSORS);
  if (rawKeys === null) fail(`header lists more than ${MAX_TENSORS} entries; a checkpoint has at most ${MAX_TENSORS} tensors`, 'header');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message})`, 'header');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header must be a JSON object', 'header');
  // Duplicates by a Set (linear); the raw key texts are decoded only now that the JSON parsed.
  const seen = new Set<string>();
  for (const raw of rawKeys!) {
    const k = JSON.parse(raw) as string;
    if (seen.has(k)) fail(`tensor name '${k}' appears more than once in the header`, `tensor '${k}'`);
    seen.add(k);
  }

  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ must be an object of strings', '__metadata__');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`metadata value must be a string, found ${JSON.stringify(v)}`, `__metadata__.${k}`);
        // defineProperty: a key named __proto__ must become data, not a prototype.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    const at = `tensor '${name}'`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('entry must be an object with dtype, shape, data_offsets', at);
    const info = raw as Record<string, unknown>;
    for (const k of Object.keys(info)) {
      if (k !== 'dtype' && k !== 'shape' && k !== 'data_offsets') fail(`unknown field '${k}'`, `${at}.${k}`);
    }
    if (!isDtype(info.dtype)) fail(`dtype ${JSON.stringify(info.dtype)} is not one of ${DTYPES.join(', ')}`, `${at}.dtype`);
    const dtype = info.dtype as Dtype;
    if (!Array.isArray(info.shape) || !info.shape.every(isNonNegInt)) {
      fail(`shape must be an array of non-negative integers, found ${JSON.stringify(info.shape)}`, `${at}.shape`);
    }
    const shape = info.shape as number[];
    const offs = info.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every(isNonNegInt)) {
      fail(`data_offsets must be [begin, end] non-negative integers, found ${JSON.stringify(offs)}`, `${at}.data_offsets`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail(`data_offsets [${begin}, ${end}] end before they begin`, `${at}.data_offsets`);
    const count = shape.reduce((a, d) => a * d, 1);
    const expected = count * BYTES[dtype];
    if (!Number.isSafeInteger(expected)) fail(`shape [${shape.join(', ')}] is too large`, `${at}.shape`);
    if (end - begin !== expected) {
      fail(
        `data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} shape [${shape.join(', ')}] needs ${expected}`,
        `${at}.data_offsets`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }

  // The data section must be tiled exactly: sorted by offset, each tensor starts where the
  // previous ended, the first at 0 and the last at the end of the file.
  const dataStart = 8 + n;
  const dataLen = b.length - dataStart;
  entries.sort((x, y) => x.begin - y.begin || x.end - y.end);
  let cursor = 0;
  for (const e of entries) {
    const where = `tensor '${e.name}'.data_offsets`;
    if (e.end > dataLen) {
      fail(`data_offsets [${e.begin}, ${e.end}] run past the end of the data section (${dataLen} bytes, file byte ${dataStart + e.end}): truncated file?`, where);
    }
    if (e.begin < cursor) fail(`data_offsets [${e.begin}, ${e.end}] overlap the previous tensor, which ends at ${cursor}`, where);
    if (e.begin > cursor) fail(`data_offsets [${e.begin}, ${e.end}] leave a gap: the previous tensor ends at ${cursor}`, where);
    cursor = e.end;
  }
  if (cursor !== dataLen) fail(`tensors cover ${cursor} bytes of data but the data section has ${dataLen} (trailing bytes)`, `byte ${dataStart + cursor}`);

  const tensors = new Map<string, SafeTensor>();
  for (const e of entries) {
    const data = new CTOR[e.dtype](e.end === e.begin ? 0 : (e.end - e.begin) / BYTES[e.dtype]);
    // Copy (rather than view) so the array is aligned and independent of the file buffer.
    const bytes = new Uint8Array(data.buffer);
    bytes.set(b.subarray(dataStart + e.begin, dataStart + e.end));
    const width = BYTES[e.dtype];
    if (!LITTLE_ENDIAN && width > 1) {
      for (let i = 0; i < bytes.length; i += width) bytes.subarray(i, i + width).reverse();
    }
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

/** IEEE 754 binary16 bits → number (exact: every half is a float32). */
export function halfToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * A floating-point tensor's values as float32: F32 as is, F16 and BF16 exactly (both are
 * subsets of float32), F64 rounded to nearest. Other dtypes are refused (null).
 */
export function toFloat32(t: SafeTensor): Float32Array | null {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F64':
      return Float32Array.from(t.data as Float64Array);
    case 'F16': {
      const src = t.data as Uint16Array;
      const out = new Float32Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = halfToNumber(src[i]);
      return out;
    }
    case 'BF16': {
      // bfloat16 is the upper half of a float32's bits.
      const src = t.data as Uint16Array;
      const bits = new Uint32Array(src.length);
      for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      return null;
  }
}

export function isFloatDtype(dtype: Dtype): boolean {
  return dtype === 'F16' || dtype === 'BF16' || dtype === 'F32' || dtype === 'F64';
}
