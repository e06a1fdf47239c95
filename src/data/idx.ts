// IDX files (MNIST, Fashion-MNIST): a 4-byte magic (0, 0, type 0x08 = ubyte, number of
// dimensions), the dimensions as big-endian uint32, then the bytes. Images are idx3
// (magic 0x00000803: count, rows, cols), labels idx1 (0x00000801: count).
import { UserError } from '../errors';
import { assertFitsInMemory } from '../engine/safe-read';

export const IDX_IMAGES_MAGIC = 0x803;
export const IDX_LABELS_MAGIC = 0x801;

function hex(v: number): string {
  return '0x' + v.toString(16).padStart(8, '0');
}

/** Header bytes of an idx file with this magic (4 + 4 per dimension). */
export function idxHeaderBytes(magic: number): number {
  return 4 + 4 * (magic & 0xff);
}

/**
 * The magic and dimensions at the start of `buf` (at least the header), and the file size
 * they promise. A promise beyond what fits in memory is refused here, before anything is
 * allocated for it.
 */
export function idxHeader(buf: Uint8Array, magic: number, file: string): { dims: number[]; headerBytes: number; total: number } {
  const headerBytes = idxHeaderBytes(magic);
  if (buf.length < headerBytes) {
    throw new UserError(
      `expected an idx file with a ${headerBytes}-byte header (magic ${hex(magic)}), found only ${buf.length} bytes`,
      file,
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const found = view.getUint32(0, false);
  if (found !== magic) {
    const kind = magic === IDX_IMAGES_MAGIC ? 'idx3 unsigned-byte images' : 'idx1 unsigned-byte labels';
    throw new UserError(`bad magic number: expected ${hex(magic)} (${kind}), found ${hex(found)}`, file, 'byte 0');
  }
  const dims: number[] = [];
  for (let d = 0; d < headerBytes / 4 - 1; d++) dims.push(view.getUint32(4 + 4 * d, false));
  return { dims, headerBytes, total: headerBytes + dims.reduce((a, b) => a * b, 1) };
}

/** The header's dimensions, when a file of `length` bytes holds exactly what they promise. */
export function checkIdxLength(head: Uint8Array, magic: number, file: string, length: number): number[] {
  const { dims, headerBytes, total } = idxHeader(head, magic, file);
  if (length !== total) {
    throw new UserError(
      `expected ${total} bytes (${headerBytes}-byte header + ${dims.join('x')} data), found ${length}`,
      file,
    );
  }
  return dims;
}

function readHeader(buf: Uint8Array, magic: number, file: string): number[] {
  return checkIdxLength(buf, magic, file, buf.length);
}

/**
 * What a gzipped idx file must decompress to, from its header: the budget for the bounded
 * gunzip (src/data/files.ts), which stops as soon as the stream passes it.
 */
export function idxGunzipExpectation(magic: number, file: string): { headBytes: number; size: (head: Buffer) => number } {
  return {
    headBytes: idxHeaderBytes(magic),
    size: (head) => {
      const { dims, total } = idxHeader(head, magic, file);
      assertFitsInMemory(total, `storing the header's ${dims.join('x')} data`, file, 'byte 4');
      return total;
    },
  };
}

export interface IdxImages {
  images: Uint8Array;
  n: number;
  rows: number;
  cols: number;
}

export function parseIdxImages(buf: Uint8Array, file: string): IdxImages {
  const [n, rows, cols] = readHeader(buf, IDX_IMAGES_MAGIC, file);
  if (rows === 0 || cols === 0) throw new UserError(`image size is ${rows}x${cols}`, file);
  // Copy so the result does not pin the (possibly larger) file buffer.
  return { images: new Uint8Array(buf.subarray(16)), n, rows, cols };
}

export function parseIdxLabels(buf: Uint8Array, file: string, numClasses: number): Int32Array {
  const [n] = readHeader(buf, IDX_LABELS_MAGIC, file);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = buf[8 + i];
    if (v >= numClasses) {
      throw new UserError(`label ${i} is ${v}; expected 0..${numClasses - 1}`, file, `byte ${8 + i}`);
    }
    labels[i] = v;
  }
  return labels;
}

export function encodeIdxImages(images: Uint8Array, n: number, rows: number, cols: number): Uint8Array {
  if (images.length !== n * rows * cols) throw new Error(`encodeIdxImages: ${images.length} != ${n}*${rows}*${cols}`);
  const out = new Uint8Array(16 + images.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, IDX_IMAGES_MAGIC, false);
  view.setUint32(4, n, false);
  view.setUint32(8, rows, false);
  view.setUint32(12, cols, false);
  out.set(images, 16);
  return out;
}

export function encodeIdxLabels(labels: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(8 + labels.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, IDX_LABELS_MAGIC, false);
  view.setUint32(4, labels.length, false);
  for (let i = 0; i < labels.length; i++) out[8 + i] = labels[i];
  return out;
}
