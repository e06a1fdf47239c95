// The paper code's training augmentation, torchvision RandomCrop(size, padding=p) with zero
// padding followed by RandomHorizontalFlip(p=0.5), applied while converting uint8 to [0,1]
// floats. Works row by row on typed arrays with no per-pixel closures.

/** k/255 for every byte value: ToTensor's scaling without a division per pixel. */
export const BYTE_TO_UNIT = (() => {
  const t = new Float32Array(256);
  for (let i = 0; i < 256; i++) t[i] = i / 255;
  return t;
})();

/** Copies `count` images (NHWC uint8, image size `size`) to floats in [0,1]. */
export function bytesToUnit(src: Uint8Array, srcOffset: number, out: Float32Array, outOffset: number, count: number): void {
  const lut = BYTE_TO_UNIT;
  for (let k = 0; k < count; k++) out[outOffset + k] = lut[src[srcOffset + k]];
}

/**
 * Writes one augmented image into `out` (which must be zero there: padding pixels are
 * skipped, not written). With padded crop origin (i, j) in 0..2p, the shift is
 * dy = i - p, dx = j - p and out(y, x) = src(y + dy, x + dx), zero outside the image;
 * a flip after the crop reads column w-1-x instead: out(y, x) = src(y + dy, w-1-x + dx).
 */
export function cropFlipInto(
  src: Uint8Array,
  srcOffset: number,
  h: number,
  w: number,
  c: number,
  dy: number,
  dx: number,
  flip: boolean,
  out: Float32Array,
  outOffset: number,
): void {
  const lut = BYTE_TO_UNIT;
  const rowLen = w * c;
  for (let y = 0; y < h; y++) {
    const sy = y + dy;
    if (sy < 0 || sy >= h) continue;
    const srcRow = srcOffset + sy * rowLen;
    const outRow = outOffset + y * rowLen;
    if (!flip) {
      // Columns x with 0 <= x + dx < w are one contiguous run.
      const x0 = dx < 0 ? -dx : 0;
      const x1 = dx > 0 ? w - dx : w;
      const from = srcRow + (x0 + dx) * c;
      const to = outRow + x0 * c;
      const len = (x1 - x0) * c;
      for (let k = 0; k < len; k++) out[to + k] = lut[src[from + k]];
    } else {
      // Columns x with 0 <= w-1-x+dx < w.
      const x0 = dx > 0 ? dx : 0;
      const x1 = dx < 0 ? w + dx : w;
      for (let x = x0; x < x1; x++) {
        const s = srcRow + (w - 1 - x + dx) * c;
        const o = outRow + x * c;
        for (let ch = 0; ch < c; ch++) out[o + ch] = lut[src[s + ch]];
      }
    }
  }
}
