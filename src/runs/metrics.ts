// Per-epoch (or per-eval) metric records, written as they happen to two files in a run dir:
//   metrics.jsonl: one JSON object per line, every key of every record (the source of truth);
//   metrics.csv:   one row per record under a header written once.
// CSV columns are fixed at the first write: the `columns` option in order, then any other keys
// of the first record in their order. Later keys that are not columns stay in the JSONL only;
// columns a record lacks get empty cells. Each record is written with one write() call per
// file (optionally fsynced), so a killed run keeps every row it finished.
// JSON has no NaN/Infinity: non-finite numbers are null in the JSONL and NaN/Infinity/-Infinity
// in the CSV (which pandas and spreadsheets read back as numbers).
import * as fs from 'fs';
import { UserError } from '../errors';
import { checkWritableFile, MIB, openAppend, readTextBoundedOrNull } from '../engine/safe-read';
import { writeFileAtomic } from './atomic';
import { runLayout, type RunLayout } from './run-dir';

export type MetricValue = number | string | boolean | null;
export type MetricRecord = Record<string, MetricValue>;

export interface MetricsWriterOptions {
  /** Preferred CSV column order (default: the first record's keys). */
  columns?: readonly string[];
  /**
   * Resuming: keep only records whose numeric `epoch` is ≤ this value (records without a
   * numeric epoch are dropped too), rewriting both files atomically, then append.
   */
  truncateAfterEpoch?: number;
  /** fsync after every record (default false: the OS still has the data if the process dies). */
  fsync?: boolean;
}

/** RFC 4180 field: quoted when it holds a comma, quote, CR or LF; quotes doubled. */
export function csvField(v: unknown): string {
  let s: string;
  if (v === null || v === undefined) return '';
  if (typeof v === 'number') s = Number.isNaN(v) ? 'NaN' : String(v);
  else if (typeof v === 'string') s = v;
  else if (typeof v === 'boolean') s = v ? 'true' : 'false';
  else s = JSON.stringify(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvRow(values: readonly unknown[]): string {
  return values.map(csvField).join(',') + '\n';
}

/** Parse CSV text (RFC 4180) into rows of strings. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else field += c;
      i++;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      if (c === '\r' && text[i + 1] === '\n') i++;
    } else field += c;
    i++;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function jsonLine(rec: MetricRecord): string {
  // JSON.stringify already maps NaN/±Infinity to null.
  return JSON.stringify(rec) + '\n';
}

/**
 * Records in a metrics.jsonl text. A final line without its newline (a write cut short by a
 * kill) is ignored; any other unparseable line is an error.
 */
function parseJsonl(text: string, file: string): { records: MetricRecord[]; partialTail: boolean } {
  const lines = text.split('\n');
  const partialTail = lines[lines.length - 1] !== '';
  const records: MetricRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.trim() === '') continue;
    const last = i === lines.length - 1;
    try {
      const v = JSON.parse(line) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      if (!last) records.push(v as MetricRecord);
    } catch (err) {
      if (last) break;
      throw new UserError(`line is not a JSON object (${(err as Error).message})`, file, `line ${i + 1}`);
    }
  }
  return { records, partialTail };
}

/** A metrics file holds a line per epoch or evaluation: far below this. */
export const MAX_METRICS_BYTES = 256 * MIB;

/** A metrics file's text (bounded, regular files only); null when it does not exist. */
function readMetricsText(file: string): string | null {
  return readTextBoundedOrNull(file, { maxBytes: MAX_METRICS_BYTES, what: 'metrics file' });
}

/** All records of a run's metrics.jsonl (empty if it does not exist yet). */
export function readMetrics(runDir: string): MetricRecord[] {
  const file = runLayout(runDir).metricsJsonl;
  const text = readMetricsText(file);
  return text === null ? [] : parseJsonl(text, file).records;
}

export class MetricsWriter {
  private columns: string[] | null;
  private closed = false;

  private constructor(
    private readonly jsonlPath: string,
    private readonly csvPath: string,
    columns: string[] | null,
    private readonly preferred: readonly string[],
    private readonly fsync: boolean,
  ) {
    this.columns = columns;
  }

  /** The CSV header, or null before the first record. */
  get csvColumns(): readonly string[] | null {
    return this.columns;
  }

  /**
   * Open the metric files of a run dir for appending, creating them on first write. On an
   * existing run, an unfinished last line is dropped and `truncateAfterEpoch` applied, both
   * by an atomic rewrite of the two files (the CSV is regenerated from the JSONL).
   */
  static open(run: string | Pick<RunLayout, 'metricsJsonl' | 'metricsCsv'>, opts: MetricsWriterOptions = {}): MetricsWriter {
    const layout = typeof run === 'string' ? runLayout(run) : run;
    const preferred = opts.columns ?? [];
    let columns: string[] | null = null;
    // Both files are read (and checked) before either is rewritten.
    const csvText = readMetricsText(layout.metricsCsv);
    const jsonlText = readMetricsText(layout.metricsJsonl);
    // Appending later opens them for writing: a pipe or device there is refused now, before anything changes.
    checkWritableFile(layout.metricsCsv, 'metrics file');
    checkWritableFile(layout.metricsJsonl, 'metrics file');
    const csvRowsAll = csvText === null ? null : parseCsv(csvText);
    if (csvRowsAll) {
      const header = csvRowsAll[0];
      if (header && header.length > 0 && header.some((h) => h !== '')) columns = header;
    }
    if (jsonlText !== null) {
      const { records, partialTail } = parseJsonl(jsonlText, layout.metricsJsonl);
      const e = opts.truncateAfterEpoch;
      const kept = e === undefined ? records : records.filter((r) => typeof r.epoch === 'number' && r.epoch <= e);
      const csvRows = columns && csvRowsAll ? csvRowsAll.length - 1 : -1;
      if (partialTail || kept.length !== records.length || csvRows !== records.length) {
        if (!columns && kept.length > 0) columns = MetricsWriter.columnsFor(preferred, kept[0]);
        writeFileAtomic(layout.metricsJsonl, kept.map(jsonLine).join(''));
        if (columns) {
          const cols = columns;
          writeFileAtomic(layout.metricsCsv, csvRow(cols) + kept.map((r) => csvRow(cols.map((c) => r[c]))).join(''));
        }
      }
    }
    return new MetricsWriter(layout.metricsJsonl, layout.metricsCsv, columns, preferred, opts.fsync ?? false);
  }

  private static columnsFor(preferred: readonly string[], first: MetricRecord): string[] {
    const cols = [...preferred];
    for (const k of Object.keys(first)) if (!cols.includes(k)) cols.push(k);
    return cols;
  }

  /** Append one record to both files. */
  append(record: MetricRecord): void {
    if (this.closed) throw new Error('MetricsWriter: append after close');
    if (!this.columns) {
      this.columns = MetricsWriter.columnsFor(this.preferred, record);
      this.appendText(this.csvPath, csvRow(this.columns));
    }
    this.appendText(this.jsonlPath, jsonLine(record));
    this.appendText(this.csvPath, csvRow(this.columns.map((c) => record[c])));
  }

  private appendText(file: string, text: string): void {
    // Never blocks on a pipe, never writes into a device: regular files only.
    const fd = openAppend(file, 'metrics file');
    try {
      fs.writeSync(fd, text);
      if (this.fsync) fs.fsyncSync(fd);
    } catch (err) {
      // write(fd) errors (ENOSPC...) carry no path; callers report which file it was.
      (err as NodeJS.ErrnoException).path ??= file;
      throw err;
    } finally {
      fs.closeSync(fd);
    }
  }

  close(): void {
    this.closed = true;
  }
}
