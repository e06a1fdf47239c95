// The TensorBoard event-file writer, read back by an independent reader: this file's own
// TFRecord framing and bitwise CRC-32C, protobufjs decoding from a .proto text written here
// (not the writer's descriptor), and — when Debian's python3-protobuf is installed — Google's
// Python protobuf runtime. Every record's two CRCs, every tag, value, step and wall time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { crc32c } from '@node-rs/crc32';
import { maskedCrc32c, TensorBoardWriter } from '../../src/runs/tensorboard';
import { UserError } from '../../src/errors';
import { tempDir } from '../helpers/configs';
import { crc32cBitwise, mask, readEvents } from '../helpers/tensorboard';

test('CRC-32C: the standard test vector, from the library and bit by bit; the TFRecord mask', () => {
  const v = Buffer.from('123456789');
  assert.equal(crc32c(v) >>> 0, 0xe3069283);
  assert.equal(crc32cBitwise(v), 0xe3069283);
  assert.equal(maskedCrc32c(v), mask(0xe3069283));
  assert.equal(mask(0xe3069283), ((((0xe3069283 >>> 15) | (0xe3069283 << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
  // 32 zero bytes: CRC-32C 0x8A9136AA (RFC 3720, B.4).
  assert.equal(crc32cBitwise(Buffer.alloc(32)), 0x8a9136aa);
  assert.equal(crc32c(Buffer.alloc(32)) >>> 0, 0x8a9136aa);
});

test('event file: name, file_version first, then every scalar with its step and wall time', () => {
  const dir = path.join(tempDir('ibrar-tb-'), 'run', 'tb');
  try {
    const w = TensorBoardWriter.open(dir, { now: new Date(1700000000123), host: 'gpu-box' });
    assert.equal(w.file, path.join(dir, 'events.out.tfevents.1700000000.gpu-box'));
    w.scalar('train/loss', 0.5, 1, 1700000001.25);
    w.scalars({ 'acc/train': 0.75, 'acc/test': 0.1, 'hsic/x/block5': -3.25 }, 2, 1700000002.5);
    const before = Date.now() / 1000;
    w.scalar('lr', 0.01, 2 ** 40);
    const after = Date.now() / 1000;
    w.scalar('nan', NaN, 3, 1700000003);
    w.flush();
    w.close();
    w.close();
    assert.throws(() => w.scalar('x', 1, 4), /closed/);
    assert.deepEqual(fs.readdirSync(dir), ['events.out.tfevents.1700000000.gpu-box']);

    const { events } = readEvents(fs.readFileSync(w.file));
    assert.equal(events.length, 5);
    assert.deepEqual(events[0], { wall_time: 1700000000.123, step: 0, file_version: 'brain.Event:2' });
    assert.deepEqual(events[1], { wall_time: 1700000001.25, step: 1, summary: { value: [{ tag: 'train/loss', simple_value: 0.5 }] } });
    assert.deepEqual(events[2], {
      wall_time: 1700000002.5,
      step: 2,
      summary: {
        value: [
          { tag: 'acc/train', simple_value: 0.75 },
          { tag: 'acc/test', simple_value: Math.fround(0.1) }, // simple_value is a float32
          { tag: 'hsic/x/block5', simple_value: -3.25 },
        ],
      },
    });
    assert.equal(events[3].step, 2 ** 40);
    assert.equal(events[3].summary!.value[0].simple_value, Math.fround(0.01));
    assert.ok(events[3].wall_time! >= before && events[3].wall_time! <= after, `${events[3].wall_time} in [${before}, ${after}]`);
    assert.ok(Number.isNaN(events[4].summary!.value[0].simple_value));
  } finally {
    fs.rmSync(path.dirname(path.dirname(dir)), { recursive: true, force: true });
  }
});

test('a second writer in the same second gets its own file; bad arguments are refused', () => {
  const dir = tempDir('ibrar-tb2-');
  try {
    const now = new Date(1700000100000);
    const a = TensorBoardWriter.open(dir, { now, host: 'h' });
    const b = TensorBoardWriter.open(dir, { now, host: 'h' });
    assert.equal(path.basename(b.file), 'events.out.tfevents.1700000100.h.1');
    a.scalar('a', 1, 0, 1);
    b.scalar('b', 2, 0, 2);
    a.close();
    b.close();
    assert.equal(readEvents(fs.readFileSync(a.file)).events[1].summary!.value[0].tag, 'a');
    assert.equal(readEvents(fs.readFileSync(b.file)).events[1].summary!.value[0].tag, 'b');
    const w = TensorBoardWriter.open(dir, { now, host: 'h' });
    assert.throws(() => w.scalar('x', 1, 1.5), RangeError);
    assert.throws(() => w.scalar('x', 1, -1), RangeError);
    assert.throws(() => w.scalars({ '': 1 }, 1), RangeError);
    w.close();
    assert.equal(readEvents(fs.readFileSync(w.file)).events.length, 1, 'refused calls wrote nothing');
    const blocker = path.join(dir, 'file');
    fs.writeFileSync(blocker, '');
    assert.throws(() => TensorBoardWriter.open(path.join(blocker, 'tb')), (e: Error) => e instanceof UserError && e.message.includes(path.join(blocker, 'tb')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a file cut at any byte reads as the whole records before the cut', () => {
  const dir = tempDir('ibrar-tb3-');
  try {
    const w = TensorBoardWriter.open(dir, { now: new Date(1700000200000), host: 'h' });
    for (let s = 0; s < 4; s++) w.scalars({ loss: 1 / (s + 1), acc: s / 4 }, s, 1700000200 + s);
    w.close();
    const full = fs.readFileSync(w.file);
    const { events, ends } = readEvents(full);
    assert.equal(events.length, 5);
    assert.equal(ends[4], full.length);
    const cut = path.join(dir, 'cut');
    for (let n = 0; n <= full.length; n++) {
      fs.writeFileSync(cut, full.subarray(0, n));
      const got = readEvents(fs.readFileSync(cut)).events;
      const whole = ends.filter((e) => e <= n).length;
      assert.equal(got.length, whole, `cut at ${n}`);
      if (whole > 0) assert.deepEqual(got[whole - 1], events[whole - 1], `cut at ${n}`);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a writer killed without flush or close leaves every record it wrote', () => {
  const dir = tempDir('ibrar-tb4-');
  try {
    const mod = path.resolve(__dirname, '..', '..', 'src', 'runs', 'tensorboard.js');
    const script = `const { TensorBoardWriter } = require(${JSON.stringify(mod)});
      const w = TensorBoardWriter.open(${JSON.stringify(dir)}, { now: new Date(1700000300000), host: 'h' });
      for (let s = 0; s < 50; s++) w.scalar('loss', s / 8, s, 1700000300 + s);
      process.kill(process.pid, 'SIGKILL');`;
    const r = spawnSync(process.execPath, ['-e', script]);
    assert.equal(r.signal, 'SIGKILL', r.stderr.toString());
    const file = path.join(dir, 'events.out.tfevents.1700000300.h');
    const { events, ends } = readEvents(fs.readFileSync(file));
    assert.equal(events.length, 51);
    assert.equal(ends[50], fs.statSync(file).size);
    events.slice(1).forEach((e, s) => assert.deepEqual(e, { wall_time: 1700000300 + s, step: s, summary: { value: [{ tag: 'loss', simple_value: s / 8 }] } }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// Python's protobuf runtime (Debian: python3-protobuf) decoding the same file; the message
// classes are built from descriptors with TensorBoard's field numbers.
const PY_READER = `
import json, struct, sys
from google.protobuf import descriptor_pb2, descriptor_pool
try:
    from google.protobuf.message_factory import GetMessageClass
except ImportError:
    from google.protobuf import message_factory
    GetMessageClass = message_factory.MessageFactory().GetPrototype
F = descriptor_pb2.FieldDescriptorProto
fd = descriptor_pb2.FileDescriptorProto(name="ibrar_tb_test.proto", package="tensorboard", syntax="proto3")
ev = fd.message_type.add(name="Event")
ev.field.add(name="wall_time", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL)
ev.field.add(name="step", number=2, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL)
ev.field.add(name="file_version", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
ev.field.add(name="summary", number=5, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL, type_name=".tensorboard.Summary")
su = fd.message_type.add(name="Summary")
va = su.nested_type.add(name="Value")
va.field.add(name="tag", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
va.field.add(name="simple_value", number=2, type=F.TYPE_FLOAT, label=F.LABEL_OPTIONAL)
su.field.add(name="value", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED, type_name=".tensorboard.Summary.Value")
pool = descriptor_pool.DescriptorPool()
pool.Add(fd)
Event = GetMessageClass(pool.FindMessageTypeByName("tensorboard.Event"))
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c ^= x
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    return c ^ 0xFFFFFFFF
def masked(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
data = open(sys.argv[1], "rb").read()
off, out = 0, []
while off + 12 <= len(data):
    (n,) = struct.unpack("<Q", data[off:off + 8])
    assert struct.unpack("<I", data[off + 8:off + 12])[0] == masked(data[off:off + 8])
    body = data[off + 12:off + 12 + n]
    assert struct.unpack("<I", data[off + 12 + n:off + 16 + n])[0] == masked(body)
    e = Event.FromString(body)
    out.append({"wall_time": e.wall_time, "step": e.step, "file_version": e.file_version,
                "values": [[v.tag, v.simple_value] for v in e.summary.value]})
    off += 16 + n
print(json.dumps(out))
`;

test("Python's protobuf runtime decodes the same events (skipped with a diagnostic without python3-protobuf)", (t) => {
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import google.protobuf'], { stdio: 'ignore' }).status === 0);
  if (!python) {
    t.diagnostic('no python3 with google.protobuf (apt-get install python3-protobuf): independent Python decoding not run');
    return;
  }
  const dir = tempDir('ibrar-tb5-');
  try {
    const w = TensorBoardWriter.open(dir, { now: new Date(1700000400500), host: 'h' });
    w.scalars({ 'train/loss': 0.375, 'train/acc': 0.1 }, 7, 1700000401.75);
    w.scalar('lr', 0.002, 123456789012, 1700000402);
    w.close();
    const r = spawnSync(python, ['-c', PY_READER, w.file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), [
      { wall_time: 1700000400.5, step: 0, file_version: 'brain.Event:2', values: [] },
      { wall_time: 1700000401.75, step: 7, file_version: '', values: [['train/loss', 0.375], ['train/acc', Math.fround(0.1)]] },
      { wall_time: 1700000402, step: 123456789012, file_version: '', values: [['lr', Math.fround(0.002)]] },
    ]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
