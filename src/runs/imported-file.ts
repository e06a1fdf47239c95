// `imported.json`: what `ibrar import` writes into the run directory of a model trained
// elsewhere — the source file, its SHA-256 and what was converted. Its presence marks the run
// as imported (its checkpoint sidecars say so too, in their trainer state).
import * as fs from 'fs';
import * as path from 'path';
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';

export const IMPORT_FORMAT = 'ibrar-import/1';
export const IMPORTED_FILE = 'imported.json';

export interface ImportedFile {
  format: typeof IMPORT_FORMAT;
  /** Absolute path of the safetensors file imported. */
  source: string;
  sha256: string;
  bytes: number;
  importedAt: string;
  /** Tensors in the file. */
  tensors: number;
  /** Tensors converted to float32, by their dtype in the file. */
  converted: Record<string, number>;
  /** Tensors accepted and not loaded (BatchNorm's num_batches_tracked). */
  ignored: string[];
  /** The file's `__metadata__`. */
  metadata: Record<string, string>;
}

export function importedFilePath(runDir: string): string {
  return path.join(runDir, IMPORTED_FILE);
}

/** The imported.json of a run, or null when it was not imported (or the file is damaged). */
export function readImportedFile(runDir: string): ImportedFile | null {
  try {
    const v = JSON.parse(readTextBoundedOrNull(importedFilePath(runDir), { maxBytes: MAX_STATE_FILE_BYTES, what: 'import record' }) ?? 'null') as ImportedFile;
    return v && v.format === IMPORT_FORMAT && typeof v.sha256 === 'string' ? v : null;
  } catch {
    return null;
  }
}
