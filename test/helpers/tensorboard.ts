// An independent TensorBoard event-file reader for tests: this file's own TFRecord framing and
// bitwise CRC-32C, protobufjs decoding from a .proto text written here (not the writer's
// descriptor). Every record's two CRCs are checked.
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as protobuf from 'protobufjs';

// Field numbers from TensorBoard's tensorboard/compat/proto/{event,summary}.proto.
const PROTO = `
syntax = "proto3";
package tensorboard;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
  }
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    oneof value {
      float simple_value = 2;
      bytes obsolete_old_style_histogram = 3;
    }
  }
  repeated Value value = 1;
}
`;
const EventType = protobuf.parse(PROTO, { keepCase: true }).root.lookupType('tensorboard.Event');

/** CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bit by bit: slow and obviously right. */
export function crc32cBitwise(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    crc ^= b;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

export function mask(crc: number): number {
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

export interface DecodedEvent {
  wall_time?: number;
  step?: number;
  file_version?: string;
  summary?: { value: { tag: string; simple_value: number }[] };
}

/**
 * Reads TFRecords the way TensorBoard's loader does: whole records in order, stopping at a
 * tail too short to be a record. Checks both CRCs of every record it returns.
 */
export function readEvents(buf: Buffer): { events: DecodedEvent[]; ends: number[] } {
  const events: DecodedEvent[] = [];
  const ends: number[] = [];
  let off = 0;
  while (off + 12 <= buf.length) {
    const len = Number(buf.readBigUInt64LE(off));
    assert.equal(buf.readUInt32LE(off + 8), mask(crc32cBitwise(buf.subarray(off, off + 8))), `length CRC of the record at ${off}`);
    if (off + 12 + len + 4 > buf.length) break;
    const data = buf.subarray(off + 12, off + 12 + len);
    assert.equal(buf.readUInt32LE(off + 12 + len), mask(crc32cBitwise(data)), `data CRC of the record at ${off}`);
    const ev = EventType.toObject(EventType.decode(data), { longs: Number }) as DecodedEvent;
    ev.step ??= 0; // proto3: an absent step is step 0
    events.push(ev);
    off += 12 + len + 4;
    ends.push(off);
  }
  return { events, ends };
}


/** One scalar of a decoded event. */
export interface Scalar {
  file: string;
  tag: string;
  step: number;
  value: number;
}

/** Every scalar of every event file in `dir` (sorted by file name), decoded independently. */
export function readScalarsIn(dir: string): Scalar[] {
  if (!fs.existsSync(dir)) return [];
  const out: Scalar[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    if (!name.startsWith('events.out.tfevents.')) continue;
    const file = path.join(dir, name);
    const { events } = readEvents(fs.readFileSync(file));
    assert.equal(events[0]?.file_version, 'brain.Event:2', `${file} starts with its file_version`);
    for (const ev of events.slice(1)) for (const v of ev.summary?.value ?? []) out.push({ file, tag: v.tag, step: ev.step!, value: v.simple_value });
  }
  return out;
}

/** tag → step → values (more than one when a (tag, step) was written twice). */
export function scalarIndex(scalars: readonly Scalar[]): Map<string, Map<number, number[]>> {
  const out = new Map<string, Map<number, number[]>>();
  for (const s of scalars) {
    let steps = out.get(s.tag);
    if (!steps) out.set(s.tag, (steps = new Map()));
    steps.set(s.step, [...(steps.get(s.step) ?? []), s.value]);
  }
  return out;
}
