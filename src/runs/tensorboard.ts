// TensorBoard event files, written directly (no TensorFlow): a TFRecord stream of `Event`
// protos. Each record is
//   uint64 LE length | masked CRC-32C of those 8 bytes | Event bytes | masked CRC-32C of them
// with mask(c) = ((c >>> 15) | (c << 17)) + 0xa282ead8 (mod 2^32). The first Event carries
// file_version "brain.Event:2"; each later one a wall time, a step and a Summary of
// {tag, simple_value} pairs. Message layouts: tensorboard/compat/proto/event.proto and
// summary.proto (field numbers below are theirs; only the fields ibrar writes are declared).
// Crash safety: a record goes to the file in one write, so a killed process leaves whole
// records plus at most one torn tail, and TensorBoard's reader stops cleanly before a torn
// tail; flush() and close() fsync.
import { makeDirs } from '../engine/safe-read';
import { crc32c } from '@node-rs/crc32';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as protobuf from 'protobufjs/light';
import { UserError } from '../errors';
import { fsyncDir } from './atomic';

/** The subset of TensorBoard's Event/Summary we write, as a protobufjs JSON descriptor. */
const EVENT_DESCRIPTOR = {
  nested: {
    tensorboard: {
      nested: {
        Event: {
          oneofs: { what: { oneof: ['file_version', 'summary'] } },
          fields: {
            wall_time: { type: 'double', id: 1 },
            step: { type: 'int64', id: 2 },
            file_version: { type: 'string', id: 3 },
            summary: { type: 'Summary', id: 5 },
          },
        },
        Summary: {
          fields: { value: { rule: 'repeated', type: 'Value', id: 1 } },
          nested: {
            Value: {
              oneofs: { value: { oneof: ['simple_value'] } },
              fields: {
                tag: { type: 'string', id: 1 },
                simple_value: { type: 'float', id: 2 },
              },
            },
          },
        },
      },
    },
  },
};

const Event = protobuf.Root.fromJSON(EVENT_DESCRIPTOR).lookupType('tensorboard.Event');

export const FILE_VERSION = 'brain.Event:2';

/** TFRecord's CRC mask: rotate right by 15 bits and add a constant, so CRCs of CRCs differ. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const c = crc32c(bytes) >>> 0;
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: header, payload and checksums in a single buffer (so one write puts it on disk). */
export function tfRecord(data: Uint8Array): Buffer {
  const rec = Buffer.allocUnsafe(8 + 4 + data.length + 4);
  rec.writeBigUInt64LE(BigInt(data.length), 0);
  rec.writeUInt32LE(maskedCrc32c(rec.subarray(0, 8)), 8);
  rec.set(data, 12);
  rec.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return rec;
}

export interface TensorBoardOpenOptions {
  /** Creation time: the file name's timestamp and the first event's wall time. */
  now?: Date;
  /** Host name in the file name (default os.hostname()). */
  host?: string;
}

export class TensorBoardWriter {
  private fd: number | null;

  private constructor(
    /** The event file being written. */
    readonly file: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /**
   * Creates `dir` and a new `events.out.tfevents.<unix-seconds>.<host>` in it (with `.1`,
   * `.2`, … appended if that name is taken: appending to another writer's file could put
   * records after its torn tail, where TensorBoard would never read them).
   */
  static open(dir: string, opts: TensorBoardOpenOptions = {}): TensorBoardWriter {
    const now = opts.now ?? new Date();
    // A host name never contains a path separator, but a caller's string might.
    const host = (opts.host ?? os.hostname()).replace(/[/\\]/g, '_');
    const base = path.join(dir, `events.out.tfevents.${Math.floor(now.getTime() / 1000)}.${host}`);
    let fd: number | null = null;
    let file = base;
    try {
      makeDirs(dir);
      for (let i = 0; fd === null; i++) {
        file = i === 0 ? base : `${base}.${i}`;
        try {
          fd = fs.openSync(file, 'wx', 0o644);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || i >= 1000) throw err;
        }
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new UserError(`cannot create a TensorBoard event file here (${code})`, dir);
    }
    const w = new TensorBoardWriter(file, fd);
    w.writeEvent({ wall_time: now.getTime() / 1000, file_version: FILE_VERSION });
    w.flush();
    // The new name must survive a power cut too, not just the bytes in it.
    fsyncDir(dir);
    return w;
  }

  /** One scalar as its own event; wall time in seconds since the epoch (default: now). */
  scalar(tag: string, value: number, step: number, wallTime?: number): void {
    this.scalars({ [tag]: value }, step, wallTime);
  }

  /** Several scalars of one step in a single event (and so a single record). */
  scalars(values: Record<string, number>, step: number, wallTime?: number): void {
    if (!Number.isSafeInteger(step) || step < 0) throw new RangeError(`TensorBoard step must be a non-negative integer, got ${step}`);
    const value = Object.entries(values).map(([tag, v]) => {
      if (tag === '') throw new RangeError('TensorBoard tag must not be empty');
      if (typeof v !== 'number') throw new TypeError(`TensorBoard value of '${tag}' must be a number, got ${typeof v}`);
      return { tag, simple_value: v };
    });
    if (value.length === 0) return;
    this.writeEvent({ wall_time: wallTime ?? Date.now() / 1000, step, summary: { value } });
  }

  /** Forces what was written to disk (fsync). */
  flush(): void {
    fs.fsyncSync(this.openFd());
  }

  /** Flushes and closes; further writes are errors. Closing twice is harmless. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }

  private openFd(): number {
    if (this.fd === null) throw new Error(`TensorBoard writer for ${this.file} is closed`);
    return this.fd;
  }

  private writeEvent(event: Record<string, unknown>): void {
    const fd = this.openFd();
    const rec = tfRecord(Event.encode(Event.fromObject(event)).finish());
    let off = 0;
    // A regular file takes the whole record in one write; the loop only guards short writes.
    while (off < rec.length) off += fs.writeSync(fd, rec, off, rec.length - off);
  }
}

export interface TensorBoardScalar {
  tag: string;
  value: number;
  step: number;
  wallTime: number;
}

/**
 * The scalars of an event file image, in file order: whole records whose two CRCs check, up to
 * the first torn or damaged record (where TensorBoard's own reader stops too).
 */
export function readEventScalars(buf: Uint8Array): TensorBoardScalar[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: TensorBoardScalar[] = [];
  let off = 0;
  while (off + 12 <= b.length) {
    const len = b.readBigUInt64LE(off);
    if (b.readUInt32LE(off + 8) !== maskedCrc32c(b.subarray(off, off + 8))) break;
    if (len > BigInt(b.length - off - 16)) break;
    const n = Number(len);
    const data = b.subarray(off + 12, off + 12 + n);
    if (b.readUInt32LE(off + 12 + n) !== maskedCrc32c(data)) break;
    let ev: { wall_time?: number; step?: number; summary?: { value?: Array<{ tag?: string; simple_value?: number }> } };
    try {
      ev = Event.toObject(Event.decode(data), { longs: Number }) as typeof ev;
    } catch {
      break;
    }
    for (const v of ev.summary?.value ?? []) {
      if (typeof v.tag === 'string' && typeof v.simple_value === 'number') out.push({ tag: v.tag, value: v.simple_value, step: ev.step ?? 0, wallTime: ev.wall_time ?? 0 });
    }
    off += 16 + n;
  }
  return out;
}
