// A bounded reader for MATLAB Level 5 MAT-files, the format of the SVHN release: numeric
// arrays only (what a dataset file holds), compressed (miCOMPRESSED, zlib; MATLAB -v7) or
// not (-v6), in either byte order. Own code because the only npm reader that handles v5
// compression (mat-for-js) is GPL-3.0 and barely used; this one is small and every length it
// reads is checked against the bytes that exist, so a damaged or hostile file is a UserError
// naming the byte offset, never an out-of-memory crash or a hang.
// Layout (MathWorks, "MAT-File Format", Level 5): a 128-byte header (text, subsystem offset,
// version 0x0100, endian indicator 'MI' written as a uint16), then data elements, each an
// 8-byte tag {type, nbytes} (or a 4-byte "small" tag with nbytes ≤ 4 in its upper half) and
// its data padded to 8 bytes. A variable is an miMATRIX element holding sub-elements: array
// flags, dimensions, name, real part (and imaginary part); -v7 wraps each in miCOMPRESSED.
import * as zlib from 'zlib';
import { UserError } from '../errors';
import { readFileOrThrow } from './files';

const HEADER_BYTES = 128;

const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
} as const;

/** MATLAB array classes (mxCLASS ids 1..15); 6..15 are numeric. */
const CLASS_NAMES: Record<number, string> = {
  1: 'cell', 2: 'struct', 3: 'object', 4: 'char', 5: 'sparse', 6: 'double', 7: 'single',
  8: 'int8', 9: 'uint8', 10: 'int16', 11: 'uint16', 12: 'int32', 13: 'uint32', 14: 'int64', 15: 'uint64',
};

export type MatNumeric = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array;

type NumericCtor = { new (n: number): MatNumeric; new (b: ArrayBufferLike, off: number, n: number): MatNumeric; BYTES_PER_ELEMENT: number };

/** Storage types a real part may use (MATLAB stores integer-valued doubles as e.g. uint8). */
const STORAGE: Record<number, { name: string; ctor: NumericCtor; get: (v: DataView, o: number, le: boolean) => number }> = {
  [MI.INT8]: { name: 'miINT8', ctor: Int8Array, get: (v, o) => v.getInt8(o) },
  [MI.UINT8]: { name: 'miUINT8', ctor: Uint8Array, get: (v, o) => v.getUint8(o) },
  [MI.INT16]: { name: 'miINT16', ctor: Int16Array, get: (v, o, le) => v.getInt16(o, le) },
  [MI.UINT16]: { name: 'miUINT16', ctor: Uint16Array, get: (v, o, le) => v.getUint16(o, le) },
  [MI.INT32]: { name: 'miINT32', ctor: Int32Array, get: (v, o, le) => v.getInt32(o, le) },
  [MI.UINT32]: { name: 'miUINT32', ctor: Uint32Array, get: (v, o, le) => v.getUint32(o, le) },
  [MI.SINGLE]: { name: 'miSINGLE', ctor: Float32Array, get: (v, o, le) => v.getFloat32(o, le) },
  [MI.DOUBLE]: { name: 'miDOUBLE', ctor: Float64Array, get: (v, o, le) => v.getFloat64(o, le) },
};

/** Deflate cannot expand data by more than ~1032:1, so a larger promise is a lie. */
const MAX_DEFLATE_RATIO = 1032;
/** How much of a compressed variable we inflate, at most, to read its header. */
const MAX_MATRIX_HEADER = 64 * 1024;

export interface MatArray {
  name: string;
  /** MATLAB class: 'double', 'uint8', … */
  className: string;
  dims: number[];
  /** The real part in MATLAB's column-major order, typed by its storage type. */
  data: MatNumeric;
  /** Byte offset of the variable's element in the file (for messages). */
  offset: number;
}

export interface MatReadOptions {
  /** Read only these variables (others are skipped without inflating more than their header). */
  only?: readonly string[];
}

/** A read past the end of the bytes at hand: fatal for a whole buffer, "need more" while streaming. */
class Short extends Error {
  constructor(readonly at: number) {
    super('short');
  }
}

function pad8(n: number): number {
  return Math.ceil(n / 8) * 8;
}

interface Tag {
  type: number;
  nbytes: number;
  /** Where the element's data starts and where the next element starts. */
  dataOff: number;
  next: number;
}

/** Makes the UserError for a problem at a byte offset of the buffer being parsed. */
type Bad = (msg: string, off: number) => UserError;

/**
 * Reads the tag at `off`. The tag itself must lie before `end` (the bytes at hand); its data
 * must lie before `limit` (the end of the enclosing element or file).
 */
function readTag(view: DataView, off: number, end: number, limit: number, le: boolean, bad: Bad, padded = true): Tag {
  if (off + 8 > end) throw new Short(off);
  const w0 = view.getUint32(off, le);
  if (w0 >>> 16 !== 0) {
    // Small element: type in the low half, byte count in the high half, data in the next 4 bytes.
    const nbytes = w0 >>> 16;
    if (nbytes > 4) throw bad(`a small data element claims ${nbytes} bytes (at most 4 fit)`, off);
    return { type: w0 & 0xffff, nbytes, dataOff: off + 4, next: off + 8 };
  }
  const nbytes = view.getUint32(off + 4, le);
  const dataOff = off + 8;
  if (dataOff + nbytes > limit) {
    throw bad(`data element claims ${nbytes} bytes but only ${Math.max(0, limit - dataOff)} remain (truncated file?)`, off);
  }
  return { type: w0, nbytes, dataOff, next: Math.min(limit, dataOff + (padded ? pad8(nbytes) : nbytes)) };
}

interface MatrixHeader {
  name: string;
  classId: number;
  complex: boolean;
  dims: number[];
  /** The real part's tag (numeric classes only). */
  real: Tag | null;
}

/**
 * Parses a variable's flags, dimensions, name and the tag of its real part, from `start` (just
 * after its miMATRIX tag). Throws Short when those headers run past `end`, the bytes at hand.
 */
function readMatrixHeader(view: DataView, start: number, end: number, limit: number, le: boolean, bad: Bad): MatrixHeader {
  const within = (off: number, tag: Tag) => {
    if (tag.dataOff + tag.nbytes > end) throw new Short(off);
    return tag;
  };
  const flags = within(start, readTag(view, start, end, limit, le, bad));
  if (flags.type !== MI.UINT32 || flags.nbytes !== 8) throw bad(`array flags should be 8 bytes of miUINT32, found type ${flags.type} with ${flags.nbytes} bytes`, start);
  const word = view.getUint32(flags.dataOff, le);
  const classId = word & 0xff;
  const complex = (word & 0x0800) !== 0;

  const dimsTag = within(flags.next, readTag(view, flags.next, end, limit, le, bad));
  if (dimsTag.type !== MI.INT32 || dimsTag.nbytes % 4 !== 0 || dimsTag.nbytes < 8) {
    throw bad(`dimensions should be two or more miINT32 values, found type ${dimsTag.type} with ${dimsTag.nbytes} bytes`, flags.next);
  }
  const dims: number[] = [];
  for (let i = 0; i < dimsTag.nbytes / 4; i++) {
    const d = view.getInt32(dimsTag.dataOff + 4 * i, le);
    if (d < 0) throw bad(`dimension ${i + 1} is ${d}`, dimsTag.dataOff + 4 * i);
    dims.push(d);
  }

  const nameTag = within(dimsTag.next, readTag(view, dimsTag.next, end, limit, le, bad));
  if (nameTag.type !== MI.INT8) throw bad(`array name should be miINT8, found type ${nameTag.type}`, dimsTag.next);
  let name = '';
  for (let i = 0; i < nameTag.nbytes; i++) name += String.fromCharCode(view.getUint8(nameTag.dataOff + i));

  const numeric = classId >= 6 && classId <= 15;
  const real = numeric ? readTag(view, nameTag.next, end, limit, le, bad) : null;
  return { name, classId, complex, dims, real };
}

interface NumericLayout {
  className: string;
  storage: (typeof STORAGE)[number];
  count: number;
  real: Tag;
}

/** Checks that a variable is a real numeric array whose data holds exactly what its dimensions say. */
function numericLayout(h: MatrixHeader, bad: Bad, elemOff: number): NumericLayout {
  const className = CLASS_NAMES[h.classId] ?? `class ${h.classId}`;
  if (!h.real) throw bad(`variable '${h.name}' is a MATLAB ${className} array; only numeric arrays can be read`, elemOff);
  if (h.complex) throw bad(`variable '${h.name}' is complex; only real arrays can be read`, elemOff);
  const storage = STORAGE[h.real.type];
  if (!storage) throw bad(`variable '${h.name}' stores its values as data type ${h.real.type}, which this reader does not handle`, h.real.dataOff - 8);
  let count = 1;
  for (const d of h.dims) count *= d;
  const size = storage.ctor.BYTES_PER_ELEMENT;
  if (h.real.nbytes !== count * size) {
    throw bad(
      `variable '${h.name}' is ${h.dims.join('x')} (${count} values) but its ${storage.name} data holds ${h.real.nbytes} bytes (${h.real.nbytes / size} values)`,
      h.real.dataOff,
    );
  }
  return { className, storage, count, real: h.real };
}

/** The values of a checked variable: a view into `bytes` where alignment and byte order allow. */
function readNumeric(bytes: Uint8Array, view: DataView, h: MatrixHeader, lay: NumericLayout, le: boolean, elemOff: number): MatArray {
  const { storage, count, real } = lay;
  const size = storage.ctor.BYTES_PER_ELEMENT;
  const abs = bytes.byteOffset + real.dataOff;
  let data: MatNumeric;
  if (size === 1 || (le && abs % size === 0)) {
    // No copy: the uint8 pixels of a dataset file can be gigabytes.
    data = new storage.ctor(bytes.buffer, abs, count);
  } else {
    data = new storage.ctor(count);
    for (let i = 0; i < count; i++) data[i] = storage.get(view, real.dataOff + i * size, le);
  }
  return { name: h.name, className: lay.className, dims: h.dims, data, offset: elemOff };
}

/**
 * Inflates one miCOMPRESSED element, stopping as soon as the output exceeds what its header
 * and dimensions promise (or as soon as its name shows it is not wanted). Returns null for a
 * skipped variable.
 */
async function inflateVariable(
  compressed: Uint8Array,
  tagOffset: number,
  le: boolean,
  file: string,
  only: Set<string> | null,
): Promise<MatArray | null> {
  const bad: Bad = (msg, rel) => new UserError(msg, file, `byte ${rel} of the variable compressed at byte ${tagOffset}`);
  const whole = (msg: string) => new UserError(msg, file, `byte ${tagOffset}`);
  const inflater = zlib.createInflate({ chunkSize: 1 << 20 });
  inflater.end(compressed);
  const head: Buffer[] = [];
  let headLen = 0;
  let out: Uint8Array | null = null;
  let total = 0;
  let got = 0;
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      if (out !== null) {
        if (got + chunk.length > total) throw whole(`compressed variable inflates beyond the ${total} bytes its header promises`);
        out.set(chunk, got);
        got += chunk.length;
        continue;
      }
      head.push(chunk);
      headLen += chunk.length;
      const buf = Buffer.concat(head);
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      let h: MatrixHeader;
      try {
        const tag = readTag(view, 0, buf.length, Number.MAX_SAFE_INTEGER, le, bad);
        if (tag.type !== MI.MATRIX) throw bad(`compressed element holds data type ${tag.type}, expected an miMATRIX variable`, 0);
        total = 8 + tag.nbytes;
        h = readMatrixHeader(view, 8, buf.length, total, le, bad);
      } catch (err) {
        if (!(err instanceof Short)) throw err;
        if (headLen > MAX_MATRIX_HEADER) throw whole(`variable header is longer than ${MAX_MATRIX_HEADER} bytes`);
        continue;
      }
      if (only && !only.has(h.name)) return null;
      if (total > compressed.length * MAX_DEFLATE_RATIO + 1024) {
        throw whole(`variable '${h.name}' claims ${total - 8} bytes, more than ${compressed.length} compressed bytes can inflate to`);
      }
      const lay = numericLayout(h, bad, 0);
      // What the dimensions promise: the sub-element headers plus the values, padded to 8.
      const promised = lay.real.dataOff + pad8(lay.real.nbytes);
      if (total > promised) throw whole(`variable '${h.name}' (${h.dims.join('x')}) claims ${total - 8} bytes, more than its dimensions need (${promised - 8})`);
      try {
        out = new Uint8Array(total);
      } catch {
        throw whole(`variable '${h.name}' needs ${total} bytes of memory, which cannot be allocated`);
      }
      if (buf.length > total) throw whole(`variable '${h.name}' inflates beyond the ${total} bytes its header promises`);
      out.set(buf, 0);
      got = buf.length;
      head.length = 0;
    }
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw whole(`corrupt compressed data (zlib: ${(err as Error).message})`);
  } finally {
    inflater.destroy();
  }
  if (out === null) throw whole(`compressed element inflates to only ${headLen} bytes, too few for a variable header`);
  if (got < total) throw whole(`compressed variable inflates to ${got} of the ${total} bytes its header promises (truncated?)`);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const h = readMatrixHeader(view, 8, total, total, le, bad);
  return readNumeric(out, view, h, numericLayout(h, bad, 0), le, tagOffset);
}

/** The byte order a Level 5 header declares; anything else is a UserError. */
function headerByteOrder(buf: Uint8Array, file: string): boolean {
  const text = Buffer.from(buf.subarray(0, Math.min(buf.length, 116))).toString('latin1');
  if (text.startsWith('MATLAB 7.3') || (buf.length > 520 && Buffer.from(buf.subarray(512, 520)).toString('latin1') === '\x89HDF\r\n\x1a\n')) {
    throw new UserError('this is a MAT-file v7.3 (HDF5), which ibrar does not read; the official SVHN files are Level 5 (save with -v7 or -v6)', file);
  }
  if (buf.length < HEADER_BYTES) throw new UserError(`${buf.length} bytes is too short for a MAT-file (a Level 5 header alone is ${HEADER_BYTES})`, file);
  const e = String.fromCharCode(buf[126], buf[127]);
  if (e !== 'IM' && e !== 'MI') throw new UserError(`not a Level 5 MAT-file: no 'MI' endian indicator`, file, 'byte 126');
  return e === 'IM';
}

/** Reads the numeric variables of a Level 5 MAT-file held in `buf` (views into it where possible). */
export async function parseMat(buf: Uint8Array, file: string, opts: MatReadOptions = {}): Promise<Map<string, MatArray>> {
  const le = headerByteOrder(buf, file);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const version = view.getUint16(124, le);
  if (version !== 0x0100) throw new UserError(`unsupported MAT-file version 0x${version.toString(16)} (Level 5 is 0x0100)`, file, 'byte 124');
  const only = opts.only ? new Set(opts.only) : null;
  const bad: Bad = (msg, off) => new UserError(msg, file, `byte ${off}`);
  const vars = new Map<string, MatArray>();
  let off = HEADER_BYTES;
  // Some writers pad the file's end with zeros: fewer than 8 bytes cannot hold an element.
  while (buf.length - off >= 8) {
    // miCOMPRESSED data is not padded: MATLAB starts the next element right after it.
    const tag = readTag(view, off, buf.length, buf.length, le, bad, view.getUint32(off, le) !== MI.COMPRESSED);
    let v: MatArray | null = null;
    if (tag.type === MI.COMPRESSED) {
      v = await inflateVariable(buf.subarray(tag.dataOff, tag.dataOff + tag.nbytes), off, le, file, only);
    } else if (tag.type === MI.MATRIX) {
      const end = tag.dataOff + tag.nbytes;
      let h: MatrixHeader;
      try {
        h = readMatrixHeader(view, tag.dataOff, end, end, le, bad);
      } catch (err) {
        if (err instanceof Short) throw bad(`variable header runs past the end of its ${tag.nbytes}-byte element`, err.at);
        throw err;
      }
      if (!only || only.has(h.name)) v = readNumeric(buf, view, h, numericLayout(h, bad, off), le, off);
    }
    // Other top-level element types carry nothing a dataset needs; they are skipped.
    if (v) {
      if (vars.has(v.name)) throw bad(`variable '${v.name}' appears twice`, off);
      vars.set(v.name, v);
    }
    off = tag.next;
  }
  return vars;
}

/** Reads a MAT-file from disk; see parseMat. */
export async function readMatFile(file: string, opts: MatReadOptions = {}): Promise<Map<string, MatArray>> {
  return parseMat(await readFileOrThrow(file), file, opts);
}
