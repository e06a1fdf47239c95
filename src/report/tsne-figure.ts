// The paper's Fig. 3: t-SNE of the penultimate features (the model's last tap) of the first n
// test examples, clean and under an attack (ε and steps from the run's `eval` section), coloured
// by true class. The embedding is saved next to the figure (figures/tsne.json).
import * as path from 'path';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { initBackend } from '../engine/backend';
import { UserError } from '../errors';
import { loadDataset, sliceSplit, testBatches, toTensors } from '../data';
import { buildModel } from '../models/registry';
import { getAttack } from '../attacks/registry';
import { targetFromModel } from '../attacks/target';
import { readTidy } from '../attacks/common';
import { attackParams } from '../eval/evaluate';
import { loadCheckpoint } from '../train/checkpoint';
import { constantMaskHook } from '../train/ib-hooks';
import { runLayout } from '../runs/run-dir';
import { writeJsonAtomic } from '../runs/atomic';
import { categorical } from './colors';
import { readRunConfig } from './runs';
import { epsWords, renderFigure, type Panel } from './svg';
import { tsne, type TsneOptions } from './tsne';

export const MAX_TSNE_FIGURE_POINTS = 2000;

export interface TsneRequest extends TsneOptions {
  runDir: string;
  /** Test examples (default 500, at most 2,000). */
  n?: number;
  attack?: string;
  checkpoint?: 'last' | 'best';
}

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

/** Squared distances of the rows of [n, d] features, via one Gram matrix on the backend. */
async function sqDistances(features: Float32Array, n: number, d: number): Promise<Float64Array> {
  const gram = await readTidy(() => {
    const f = tf.tensor2d(features, [n, d]);
    const c = tf.sub(f, tf.mean(f, 0, true));
    return tf.matMul(c, tf.transpose(c));
  });
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) out[i * n + j] = i === j ? 0 : Math.max(0, gram[i * n + i] + gram[j * n + j] - 2 * gram[i * n + j]);
  }
  return out;
}

export async function computeTsne(req: TsneRequest): Promise<TsneData> {
  const n0 = req.n ?? 500;
  if (!(Number.isInteger(n0) && n0 >= 5 && n0 <= MAX_TSNE_FIGURE_POINTS)) throw new UserError(`t-SNE needs 5 to ${MAX_TSNE_FIGURE_POINTS} points, found ${n0}`, undefined, '--n');
  const cfg = readRunConfig(req.runDir);
  const attackName = getAttack(req.attack ?? 'pgd').name;
  await initBackend(cfg.backend);
  const dataset = await loadDataset(cfg.data, cfg.seed);
  const model = buildModel(cfg.model, dataset.numClasses, dataset.shape, new Rng(cfg.seed).fork('init'));
  try {
    const tag = req.checkpoint ?? cfg.eval.checkpoint;
    const { sidecar } = loadCheckpoint(runLayout(req.runDir).checkpoints, tag, model.params);
    const hook = sidecar.mask && cfg.ib.mask.applyAtEval ? constantMaskHook(Float32Array.from(sidecar.mask)) : undefined;
    const target = targetFromModel(model, { channelMask: hook });
    const tap = model.tapNames[model.tapNames.length - 1];
    const split = sliceSplit(dataset.test, 0, Math.min(n0, dataset.test.n));
    const n = split.n;
    const params = attackParams(attackName, { eps: cfg.eval.eps, steps: cfg.eval.steps });
    const feats: { clean: Float32Array[]; adv: Float32Array[] } = { clean: [], adv: [] };
    const preds: { clean: number[]; adv: number[] } = { clean: [], adv: [] };
    const features = async (x: tf.Tensor4D): Promise<{ f: Float32Array; p: number[] }> => {
      const [f, p] = tf.tidy(() => {
        const out = model.forward(x, { training: false, channelMask: hook });
        return [tf.reshape(out.taps[tap], [x.shape[0], -1]), tf.argMax(out.logits, 1)];
      });
      try {
        const [fv, pv] = await Promise.all([f.data(), p.data()]);
        return { f: fv as Float32Array, p: Array.from(pv) };
      } finally {
        tf.dispose([f, p]);
      }
    };
    let b = 0;
    for (const batch of testBatches(split, cfg.eval.batchSize)) {
      const { x, y, yOneHot } = toTensors(batch, dataset.numClasses);
      try {
        const c = await features(x);
        feats.clean.push(c.f);
        preds.clean.push(...c.p);
        const res = await getAttack(attackName).run({ target, rng: new Rng(cfg.seed).fork(`tsne-${attackName}-${b++}`) }, x, y, params as never);
        const a = await features(res.xAdv);
        res.xAdv.dispose();
        feats.adv.push(a.f);
        preds.adv.push(...a.p);
      } finally {
        tf.dispose([x, y, yOneHot]);
      }
    }
    const concat = (parts: Float32Array[]): Float32Array => {
      const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let o = 0;
      for (const p of parts) {
        out.set(p, o);
        o += p.length;
      }
      return out;
    };
    const embed = async (parts: Float32Array[], predictions: number[]): Promise<TsneEmbedding> => {
      const f = concat(parts);
      const d = f.length / n;
      const res = tsne(await sqDistances(f, n, d), n, req);
      const points: Array<[number, number]> = [];
      for (let i = 0; i < n; i++) points.push([res.embedding[2 * i], res.embedding[2 * i + 1]]);
      return { points, predictions, kl: res.kl };
    };
    return {
      format: 'ibrar-tsne/1',
      runDir: req.runDir,
      checkpoint: tag,
      tap,
      n,
      attack: attackName,
      eps: cfg.eval.eps,
      params,
      labels: Array.from(split.labels),
      classNames: dataset.classNames,
      clean: await embed(feats.clean, preds.clean),
      adversarial: await embed(feats.adv, preds.adv),
    };
  } finally {
    model.dispose();
  }
}

export function tsneFigure(data: TsneData, label: string): string {
  const k = data.classNames.length;
  const acc = (p: number[]) => (100 * p.filter((v, i) => v === data.labels[i]).length) / Math.max(p.length, 1);
  const panel = (title: string, e: TsneEmbedding, name: string): Panel => ({
    title: `${title} (accuracy ${acc(e.predictions).toFixed(1)}%)`,
    xLabel: 't-SNE 1',
    yLabel: 't-SNE 2',
    hideTicks: true,
    scatter: { name, points: e.points.map(([x, y], i) => ({ x, y, color: categorical(data.labels[i], k), label: data.labels[i] })) },
  });
  return renderFigure({
    title: `t-SNE of ${data.tap} features: ${label} (n = ${data.n})`,
    panels: [panel('clean', data.clean, 'clean'), panel(`${data.attack.toUpperCase()} ε = ${epsWords(data.eps)}`, data.adversarial, 'adversarial')],
    columns: 2,
    panelWidth: 420,
    panelHeight: 400,
    legend: data.classNames.map((c, i) => ({ name: c, color: categorical(i, k) })),
    note: 'Colour = true class. Each panel is its own embedding (t-SNE axes are not comparable across panels).',
  });
}

export function writeTsneData(outDir: string, data: TsneData): string {
  const file = path.join(outDir, 'tsne.json');
  writeJsonAtomic(file, data);
  return file;
}
