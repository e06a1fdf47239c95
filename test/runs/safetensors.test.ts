import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeSafetensors, encodeSafetensors, halfToNumber, MAX_TENSORS, toFloat32, type NamedSafeTensor } from '../../src/runs/safetensors';
import { UserError } from '../../src/errors';

const FILE = 'model.safetensors';

/** A file image from a literal header text (padded with spaces to 8) and data bytes. */
function image(header: string, data: number[] | Uint8Array = []): Buffer {
  const json = Buffer.from(header, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const out = Buffer.alloc(8 + padded + data.length, 0x20);
  out.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(out, 8);
  Buffer.from(data).copy(out, 8 + padded);
  return out;
}

function f32le(...xs: number[]): number[] {
  const b = Buffer.alloc(4 * xs.length);
  xs.forEach((x, i) => b.writeFloatLE(x, 4 * i));
  return [...b];
}

/** Asserts a UserError naming FILE whose message/where match. */
function rejects(buf: Uint8Array, message: RegExp, where?: RegExp): void {
  assert.throws(
    () => decodeSafetensors(buf, FILE),
    (err: unknown) => {
      assert.ok(err instanceof UserError, `expected UserError, got ${String(err)}`);
      assert.equal(err.file, FILE);
      assert.ok(err.message.startsWith(FILE + ': '), err.message);
      assert.match(err.message, message);
      if (where) assert.match(err.where ?? '', where);
      return true;
    },
  );
}

test('known answer: hand-built bytes, dtype-then-name order, metadata first, space padding', () => {
  const out = encodeSafetensors(
    [
      { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, -2]) },
      { name: 'b', dtype: 'I64', shape: [1], data: new BigInt64Array([5n]) },
    ],
    { k: 'v' },
  );
  // I64 sorts before F32 (descending alignment rank), so 'b' comes first in data and header.
  const header = '{"__metadata__":{"k":"v"},"b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  assert.equal(header.length, 133);
  const expected = Buffer.concat([
    Buffer.from([136, 0, 0, 0, 0, 0, 0, 0]), // 133 rounded up to 136
    Buffer.from(header + '   ', 'utf8'),
    Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]), // 1.0f, -2.0f
  ]);
  assert.deepEqual(out, expected);
});

test('known answer: the reference implementation test vectors (attn.0 / attn0)', () => {
  const data = new Float32Array([0, 1, 2, 3, 4, 5]);
  const a = encodeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data }]);
  const ha = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
  assert.equal(ha.length, 64);
  assert.deepEqual(a, Buffer.concat([Buffer.from([64, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(ha), Buffer.from(f32le(0, 1, 2, 3, 4, 5))]));
  const b = encodeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data }]);
  const hb = '{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}';
  assert.equal(hb.length, 65);
  assert.deepEqual(b, Buffer.concat([Buffer.from([72, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(hb + ' '.repeat(7)), Buffer.from(f32le(0, 1, 2, 3, 4, 5))]));
  // Empty file with metadata only.
  const c = encodeSafetensors([], { framework: 'pt' });
  assert.deepEqual(c, Buffer.concat([Buffer.from([40, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"__metadata__":{"framework":"pt"}}     ')]));
  assert.deepEqual(encodeSafetensors([]), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]));
});

test('round trip of every dtype, scalars and empty tensors; data is 8-byte aligned', () => {
  const tensors: NamedSafeTensor[] = [
    { name: 'u8', dtype: 'U8', shape: [3], data: new Uint8Array([0, 127, 255]) },
    { name: 'i32', dtype: 'I32', shape: [2, 2], data: new Int32Array([-2147483648, -1, 0, 2147483647]) },
    { name: 'f32', dtype: 'F32', shape: [2, 1, 2], data: new Float32Array([0.1, -3.5, 1e-30, 65504]) },
    { name: 'f64', dtype: 'F64', shape: [2], data: new Float64Array([Math.PI, -1e300]) },
    { name: 'i64', dtype: 'I64', shape: [2], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n]) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7.25]) },
    { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Float32Array(0) },
    { name: '10', dtype: 'U8', shape: [1], data: new Uint8Array([9]) }, // integer-like name
  ];
  const buf = encodeSafetensors(tensors, { format: 'pt', note: 'ünïcödé "quoted"' });
  assert.equal(Number(buf.readBigUInt64LE(0)) % 8, 0);
  const { tensors: got, metadata } = decodeSafetensors(buf, FILE);
  assert.deepEqual(metadata, { format: 'pt', note: 'ünïcödé "quoted"' });
  assert.equal(got.size, tensors.length);
  for (const t of tensors) {
    const g = got.get(t.name)!;
    assert.equal(g.dtype, t.dtype, t.name);
    assert.deepEqual(g.shape, t.shape, t.name);
    assert.deepEqual(g.data, t.data, t.name);
  }
  // File order: I64, F64, F32 (by name), I32, U8 (by name).
  assert.deepEqual([...got.keys()], ['i64', 'f64', 'empty', 'f32', 'scalar', 'i32', '10', 'u8']);
});

test('reader accepts any key order and unpadded headers (older writers)', () => {
  const valid = '{"y":{"data_offsets":[4,8],"shape":[1],"dtype":"F32"},"x":{"shape":[],"dtype":"I32","data_offsets":[0,4]}}';
  const json = Buffer.from(valid);
  const img = Buffer.alloc(8 + json.length + 8);
  img.writeBigUInt64LE(BigInt(json.length), 0);
  json.copy(img, 8);
  img.writeInt32LE(-7, 8 + json.length);
  img.writeFloatLE(2.5, 8 + json.length + 4);
  const { tensors } = decodeSafetensors(img, FILE);
  assert.deepEqual([...tensors.keys()], ['x', 'y']);
  assert.equal(tensors.get('x')!.data[0], -7);
  assert.equal(tensors.get('y')!.data[0], 2.5);
});

test('corrupt: file shorter than the length prefix', () => {
  rejects(Buffer.from([1, 2, 3, 4, 5]), /too short/, /byte 0/);
});

test('corrupt: header length larger than the file (truncated header)', () => {
  const good = encodeSafetensors([{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) }]);
  rejects(good.subarray(0, 30), /header length 56 runs past the end of the file \(30 bytes\)/, /byte 0/);
  const huge = Buffer.from(good);
  huge.writeBigUInt64LE(2n ** 40n, 0);
  rejects(huge, /exceeds the 100000000-byte limit/, /byte 0/);
});

test('corrupt: truncated data section names the tensor and its offsets', () => {
  const good = encodeSafetensors([
    { name: 'a', dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
    { name: 'b', dtype: 'F32', shape: [2], data: new Float32Array([3, 4]) },
  ]);
  rejects(good.subarray(0, good.length - 4), /data_offsets \[8, 16\] run past the end of the data section \(12 bytes/, /tensor 'b'\.data_offsets/);
});

test('corrupt: header is not JSON, not UTF-8, or not an object', () => {
  rejects(image('{"a": {"dtype": "F32",'), /not valid JSON/, /header/);
  rejects(image('["a"]'), /must be a JSON object/, /header/);
  const bad = image('{"a":1}');
  bad[9] = 0xff; // inside the header
  rejects(bad, /not valid UTF-8/);
});

test('corrupt: unknown dtype, bad shape, bad offsets field', () => {
  rejects(image('{"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}}', [0]), /dtype "F8_E4M3" is not one of U8, I32, F16, BF16, F32, F64, I64/, /tensor 'w'\.dtype/);
  rejects(image('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /shape must be an array of non-negative integers/, /tensor 'w'\.shape/);
  rejects(image('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', [0, 0, 0, 0]), /non-negative integers/, /tensor 'w'\.shape/);
  rejects(image('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}', [0, 0, 0, 0]), /data_offsets must be \[begin, end\]/, /tensor 'w'\.data_offsets/);
  rejects(image('{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', [0, 0, 0, 0]), /end before they begin/, /tensor 'w'\.data_offsets/);
  rejects(image('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}', [0, 0, 0, 0]), /unknown field 'extra'/, /tensor 'w'\.extra/);
  rejects(image('{"w":[1,2]}'), /must be an object/, /tensor 'w'/);
  rejects(image('{"__metadata__":{"k":3}}'), /metadata value must be a string/, /__metadata__\.k/);
});

test('corrupt: byte count disagrees with shape × dtype size', () => {
  rejects(
    image('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', f32le(1, 2)),
    /span 8 bytes but F32 shape \[3\] needs 12/,
    /tensor 'w'\.data_offsets/,
  );
});

test('corrupt: overlapping, gapped, out-of-bounds offsets and trailing bytes', () => {
  rejects(
    image('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}', f32le(1, 2, 3)),
    /overlap the previous tensor, which ends at 8/,
    /tensor 'b'\.data_offsets/,
  );
  rejects(
    image('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}', f32le(1, 2, 3)),
    /leave a gap: the previous tensor ends at 4/,
    /tensor 'b'\.data_offsets/,
  );
  rejects(image('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', []), /run past the end of the data section \(0 bytes/, /tensor 'a'\.data_offsets/);
  rejects(image('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32le(1, 2)), /cover 4 bytes of data but the data section has 8/, /byte/);
});

test('corrupt: duplicate tensor name (JSON.parse alone would hide it)', () => {
  rejects(
    image('{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', [1, 2]),
    /'w' appears more than once/,
    /tensor 'w'/,
  );
  // A key repeated inside nested objects or metadata values is not a top-level duplicate.
  const ok = image('{"__metadata__":{"w":"w"},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [1]);
  assert.equal(decodeSafetensors(ok, FILE).tensors.get('w')!.data[0], 1);
});

test('a __proto__ metadata key is data, not a prototype', () => {
  const { metadata } = decodeSafetensors(image('{"__metadata__":{"__proto__":"x"}}'), FILE);
  assert.equal(Object.getPrototypeOf(metadata), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(metadata, '__proto__')?.value, 'x');
});

test('writer rejects inconsistent input', () => {
  assert.throws(() => encodeSafetensors([{ name: 'a', dtype: 'F32', shape: [3], data: new Float32Array(2) }]), /needs 3 values, got 2/);
  assert.throws(() => encodeSafetensors([{ name: 'a', dtype: 'F64', shape: [2], data: new Float32Array(2) }]), /is F64 but its data is a Float32Array/);
  assert.throws(
    () =>
      encodeSafetensors([
        { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
        { name: 'a', dtype: 'U8', shape: [1], data: new Uint8Array(1) },
      ]),
    /duplicate tensor name 'a'/,
  );
});

test('F16 and BF16 (hand-built bytes) decode to their exact float32 values; F64 rounds; integers are not floats', () => {
  // binary16: 1, -2, 1/3 rounded (0x3555), the smallest subnormal 2^-24, the largest normal 65504, -0, +inf.
  const half = [0x3c00, 0xc000, 0x3555, 0x0001, 0x7bff, 0x8000, 0x7c00];
  const halfWant = [1, -2, 0.333251953125, 2 ** -24, 65504, -0, Infinity];
  // bfloat16 = the upper 16 bits of a float32: 1, -3, 0x3eaa → 0.33203125, 2^-133 (a float32 subnormal).
  const bf = [0x3f80, 0xc040, 0x3eaa, 0x0001];
  const bfWant = [1, -3, 0.33203125, 2 ** -133];
  const u16 = (xs: number[]) => xs.flatMap((x) => [x & 0xff, x >> 8]);
  const buf = image(
    '{"b":{"dtype":"BF16","shape":[4],"data_offsets":[0,8]},"d":{"dtype":"F64","shape":[1],"data_offsets":[8,16]},"h":{"dtype":"F16","shape":[7],"data_offsets":[16,30]},"i":{"dtype":"I64","shape":[],"data_offsets":[30,38]}}',
    [...u16(bf), ...[...Buffer.from(new Float64Array([0.1]).buffer)], ...u16(half), 7, 0, 0, 0, 0, 0, 0, 0],
  );
  const { tensors } = decodeSafetensors(buf, FILE);
  assert.deepEqual([...toFloat32(tensors.get('h')!)!], halfWant);
  assert.ok(Object.is(toFloat32(tensors.get('h')!)![5], -0));
  assert.deepEqual([...toFloat32(tensors.get('b')!)!], bfWant);
  assert.deepEqual([...toFloat32(tensors.get('d')!)!], [Math.fround(0.1)]);
  assert.equal(toFloat32(tensors.get('i')!), null);
  assert.equal(tensors.get('i')!.data[0], 7n);
  assert.ok(Number.isNaN(halfToNumber(0x7e00)));
});

/** A header of `n` one-byte U8 tensors (and their data). */
function manyTensors(n: number): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"U8","shape":[1],"data_offsets":[${i},${i + 1}]}`);
  let json = `{${parts.join(',')}}`;
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, Buffer.from(json), Buffer.alloc(n)]);
}

test('header parsing is linear: a million entries are refused from one scan, the largest allowed count parses', { timeout: 30_000 }, () => {
  // Before: duplicate names were found with indexOf per key (quadratic): 100,000 entries took
  // 16 s and a million about half an hour, unkillable by SIGTERM. Now one scan counts them.
  assert.throws(() => decodeSafetensors(manyTensors(1_000_000), 'big.safetensors'), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match((e as Error).message, /^big\.safetensors: header: header lists more than 16384 entries; a checkpoint has at most 16384 tensors$/);
    return true;
  });
  const ok = decodeSafetensors(manyTensors(MAX_TENSORS), 'max.safetensors');
  assert.equal(ok.tensors.size, MAX_TENSORS);
  // Duplicates are still found (by a Set), and a metadata entry does not count as a tensor.
  const dup = Buffer.from(manyTensors(2).toString('latin1').replace('"t1"', '"t0"'), 'latin1');
  assert.throws(() => decodeSafetensors(dup, 'dup.safetensors'), /tensor name 't0' appears more than once/);
});
