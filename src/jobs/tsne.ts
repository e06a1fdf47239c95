// The data of the paper's Fig. 3: t-SNE of the penultimate features (the model's last tap) of
// the first n test examples, clean and under an attack (ε and steps from the run's `eval`
// section). Saved as the run file figures/tsne.json, which report/tsne-figure.ts draws.
import * as path from 'path';
import { tf } from '../engine/tf';
import { Rng } from '../engine/rng';
import { UserError } from '../errors';
import { sliceSplit, testBatches, toTensors } from '../data';
import { getAttack } from '../attacks/registry';
import { readTidy } from '../attacks/common';
import { constantMaskHook } from '../ib/hooks';
import { runLayout } from '../runs/run-dir';
import { writeJsonAtomic } from '../runs/atomic';
import { TSNE_FILE, type TsneData, type TsneEmbedding } from '../runs/tsne-file';
import { attackParams } from './eval';
import { openRun } from './open-run';
import { tsne, type TsneOptions } from './tsne-embedding';

export const MAX_TSNE_FIGURE_POINTS = 2000;

export interface TsneRequest extends TsneOptions {
  runDir: string;
  /** Test examples (default 500, at most 2,000). */
  n?: number;
  attack?: string;
  checkpoint?: 'last' | 'best';
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
  const attackName = getAttack(req.attack ?? 'pgd').name;
  const run = await openRun({ kind: 'existing', runDir: req.runDir, checkpoint: 'none' });
  const { cfg, dataset, model } = run;
  try {
    const tag = req.checkpoint ?? cfg.eval.checkpoint;
    run.useCheckpoint(tag);
    const hook = run.evalMask ? constantMaskHook(run.evalMask) : undefined;
    const target = run.target();
    const tap = model.tapNames[model.tapNames.length - 1];
    const split = sliceSplit(dataset.test, 0, Math.min(n0, dataset.test.n));
    const n = split.n;
    const params = attackParams(attackName, { eps: cfg.eval.eps, steps: cfg.eval.steps, params: cfg.eval.params });
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
    run.dispose();
  }
}

/** Compute the t-SNE data of a run and save it as figures/tsne.json. */
export async function computeTsneFile(req: TsneRequest): Promise<{ data: TsneData; file: string }> {
  const data = await computeTsne(req);
  const file = path.join(runLayout(req.runDir).figures, TSNE_FILE);
  writeJsonAtomic(file, data);
  return { data, file };
}

