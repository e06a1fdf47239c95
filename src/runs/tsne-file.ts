// What `plot --kind tsne` computes and draws from (figures/tsne.json), defined once.
import { MAX_STATE_FILE_BYTES, readTextBoundedOrNull } from '../engine/safe-read';
import * as path from 'path';
import { UserError } from '../errors';
import { runLayout } from './run-dir';

export const TSNE_FILE = 'tsne.json';

export interface TsneEmbedding {
  /** n rows of [x, y]. */
  points: Array<[number, number]>;
  predictions: number[];
  kl: number;
}

export interface TsneData {
  format: 'ibrar-tsne/1';
  runDir: string;
  checkpoint: string;
  tap: string;
  n: number;
  attack: string;
  eps: number;
  params: Record<string, unknown>;
  labels: number[];
  classNames: string[];
  clean: TsneEmbedding;
  adversarial: TsneEmbedding;
}

/** The t-SNE data saved in a run, or a clear error saying how to compute it. */
export function readTsneData(runDir: string): TsneData {
  const file = path.join(runLayout(runDir).figures, TSNE_FILE);
  try {
    const text = readTextBoundedOrNull(file, { maxBytes: MAX_STATE_FILE_BYTES, what: 't-SNE data' });
    if (text === null) throw new Error('ENOENT');
    const data = JSON.parse(text) as TsneData;
    if (data.format !== 'ibrar-tsne/1') throw new Error('not a t-SNE file');
    return data;
  } catch (err) {
    throw new UserError(`no t-SNE data (${(err as Error).message}); \`ibrar plot ${runDir} --kind tsne\` computes it`, file);
  }
}
