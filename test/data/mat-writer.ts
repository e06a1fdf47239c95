// A minimal MATLAB Level 5 writer for the SVHN tests, written from the MAT-file format
// description (not from src/data/mat.ts): numeric arrays, optionally each wrapped in an
// miCOMPRESSED element, in either byte order. Test fixtures from scipy.io.savemat
// (test/fixtures/mat/) check the reader against an independent writer as well.
import * as zlib from 'zlib';

export const MI = { INT8: 1, UINT8: 2, INT32: 5, UINT32: 6, DOUBLE: 9, MATRIX: 14, COMPRESSED: 15 } as const;
export const MX = { DOUBLE: 6, UINT8: 9, CHAR: 4 } as const;

const SIZE: Record<number, number> = { [MI.INT8]: 1, [MI.UINT8]: 1, [MI.INT32]: 4, [MI.UINT32]: 4, [MI.DOUBLE]: 8 };

function put(view: DataView, off: number, type: number, v: number, le: boolean): void {
  if (type === MI.INT8) view.setInt8(off, v);
  else if (type === MI.UINT8) view.setUint8(off, v);
  else if (type === MI.INT32) view.setInt32(off, v, le);
  else if (type === MI.UINT32) view.setUint32(off, v, le);
  else if (type === MI.DOUBLE) view.setFloat64(off, v, le);
  else throw new Error(`writer: type ${type}`);
}

/** One data element: tag + values + zero padding to 8 bytes (small format when ≤ 4 bytes and `small`). */
export function element(type: number, values: ArrayLike<number>, le: boolean, small = true): Buffer {
  const n = values.length * SIZE[type];
  if (small && n <= 4 && n > 0) {
    const b = Buffer.alloc(8);
    const v = new DataView(b.buffer, b.byteOffset, 8);
    v.setUint32(0, (n << 16) | type, le);
    for (let i = 0; i < values.length; i++) put(v, 4 + i * SIZE[type], type, values[i], le);
    return b;
  }
  const b = Buffer.alloc(8 + Math.ceil(n / 8) * 8);
  const v = new DataView(b.buffer, b.byteOffset, b.length);
  v.setUint32(0, type, le);
  v.setUint32(4, n, le);
  for (let i = 0; i < values.length; i++) put(v, 8 + i * SIZE[type], type, values[i], le);
  return b;
}

export function tag(type: number, nbytes: number, le: boolean): Buffer {
  const b = Buffer.alloc(8);
  const v = new DataView(b.buffer, b.byteOffset, 8);
  v.setUint32(0, type, le);
  v.setUint32(4, nbytes, le);
  return b;
}

export interface MatVar {
  name: string;
  classId: number;
  dims: number[];
  /** Storage type of the values (may differ from the class, as MATLAB does for doubles). */
  storage: number;
  values: ArrayLike<number>;
}

/** An miMATRIX element (tag included). */
export function matrix(v: MatVar, le: boolean): Buffer {
  const nameBytes = Array.from(Buffer.from(v.name, 'latin1'));
  const body = Buffer.concat([
    element(MI.UINT32, [v.classId, 0], le, false),
    element(MI.INT32, v.dims, le, false),
    element(MI.INT8, nameBytes, le),
    element(v.storage, v.values, le, false),
  ]);
  return Buffer.concat([tag(MI.MATRIX, body.length, le), body]);
}

export function compressed(el: Buffer, le: boolean): Buffer {
  const z = zlib.deflateSync(el);
  return Buffer.concat([tag(MI.COMPRESSED, z.length, le), z]);
}

export function header(le: boolean): Buffer {
  const h = Buffer.alloc(128, 0x20);
  h.write('MATLAB 5.0 MAT-file, written by the ibrar test writer', 0, 'latin1');
  h.fill(0, 116, 124);
  const v = new DataView(h.buffer, h.byteOffset, 128);
  v.setUint16(124, 0x0100, le);
  // 'MI' written as a uint16 in the file's byte order: 'IM' on disk means little-endian.
  h.write(le ? 'IM' : 'MI', 126, 'latin1');
  return h;
}

export function matFile(vars: MatVar[], opts: { le?: boolean; compress?: boolean } = {}): Buffer {
  const le = opts.le ?? true;
  return Buffer.concat([header(le), ...vars.map((v) => (opts.compress ? compressed(matrix(v, le), le) : matrix(v, le)))]);
}

/** X(h, w, c, n), 1-based in MATLAB, 0-based here: a pattern no transposition maps to itself. */
export function svhnPixel(h: number, w: number, c: number, n: number): number {
  return (h * 7 + w * 13 + c * 101 + n * 53) % 256;
}

/** SVHN's X (uint8 32x32x3xN, column-major) and y (N x 1, stored as `yStorage`). */
export function svhnVars(labels: number[], first = 0, yStorage: number = MI.DOUBLE): MatVar[] {
  const n = labels.length;
  const x = new Uint8Array(32 * 32 * 3 * n);
  let i = 0;
  for (let k = 0; k < n; k++) for (let c = 0; c < 3; c++) for (let w = 0; w < 32; w++) for (let h = 0; h < 32; h++) x[i++] = svhnPixel(h, w, c, first + k);
  return [
    { name: 'X', classId: MX.UINT8, dims: [32, 32, 3, n], storage: MI.UINT8, values: x },
    { name: 'y', classId: MX.DOUBLE, dims: [n, 1], storage: yStorage, values: labels },
  ];
}
