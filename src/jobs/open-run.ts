// Setting up a run, written once for every job: config → backend → dataset → model →
// checkpoint. Training, evaluation, the probe's candidates, t-SNE and the figures' sweeps all
// start here, so a run is opened the same way whoever opens it.
//
// A new run's directory is made only when the job says so (`createDir`), after everything that
// can fail on bad input (config values, data files, the model, the job's own set-up) has been
// checked: bad input never leaves a run directory behind.
import * as fs from 'fs';
import * as path from 'path';
import { Rng } from '../engine/rng';
import { initBackend, type BackendInfo } from '../engine/backend';
import { applyNativeThreads, nativeThreads } from '../engine/native/threads';
import { tf } from '../engine/tf';
import { configToYaml, loadConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { loadDataset, type Dataset } from '../data';
import { buildModel } from '../models/registry';
import type { Model } from '../models/types';
import { getAttack } from '../attacks/registry';
import { parseAttackParams } from '../attacks/params';
import { targetFromModel } from '../attacks/target';
import type { AttackTarget } from '../attacks/types';
import { constantMaskHook } from '../ib/hooks';
import { checkRunDirShape, createRunDir, runLayout, type RunLayout } from '../runs/run-dir';
import { writeFileAtomic } from '../runs/atomic';
import { checkpointPaths, loadCheckpoint, sidecarPath, type CheckpointSidecar, type OptimizerSlot } from '../runs/checkpoint';

/**
 * Which checkpoint to load: `last`, `best`, a sidecar path (`…/<tag>.json`), `resume` (the
 * newest that verifies: last, else best; none when the run has no checkpoint files at all), or
 * `none`.
 */
export type CheckpointChoice = 'last' | 'best' | 'resume' | 'none' | string;

export type OpenRunRequest =
  | { kind: 'new'; cfg: ExperimentConfig; configFile?: string }
  | { kind: 'existing'; runDir: string; checkpoint: CheckpointChoice };

export interface LoadedRunCheckpoint {
  dir: string;
  tag: string;
  sidecar: CheckpointSidecar;
  optimizerState: OptimizerSlot[];
}

export interface OpenedRun {
  cfg: ExperimentConfig;
  /** The YAML file the config came from (named in errors about its values). */
  configFile?: string;
  backend: BackendInfo;
  dataset: Dataset;
  model: Model;
  /** The run directory; null for a new run until `createDir`. */
  layout: RunLayout | null;
  checkpoint: LoadedRunCheckpoint | null;
  /** Problems with checkpoints that `resume` skipped (e.g. a corrupt `last` when `best` loaded). */
  skippedCheckpoints: string[];
  /** The channel mask the model is evaluated with: the checkpoint's, when ib.mask.applyAtEval. */
  evalMask: Float32Array | null;
  /** New runs: make the run directory and write config.yaml (atomically). */
  createDir(): RunLayout;
  /** Load another checkpoint of this run into the model (e.g. `best` after training). */
  useCheckpoint(choice: 'last' | 'best' | string): LoadedRunCheckpoint;
  /** The model as an attack target, in eval mode, with the evaluation mask. */
  target(): AttackTarget;
  dispose(): void;
}

export interface OpenRunOptions {
  /** Notes for the user (a dataset being fetched, a checkpoint skipped). */
  onNote?: (message: string) => void;
}

/** A UserError that names no file came from the config (a layer, a subset size...): say which config. */
export function inConfigFile(err: unknown, file: string | undefined): unknown {
  return err instanceof UserError && !err.file && file ? new UserError(err.message, file) : err;
}

/**
 * Attack names and parameters a config refers to, checked against the registry before anything
 * runs (the schema cannot know the attacks: they sit above it).
 */
export function checkConfigAttacks(cfg: ExperimentConfig): void {
  const refs: Array<[string, string]> = [
    ...cfg.eval.attacks.map((a, i): [string, string] => [`eval.attacks.${i}`, a]),
    ['probe.attack', cfg.probe.attack],
    ...(cfg.train.monitor ? [['train.monitor.attack', cfg.train.monitor.attack] as [string, string]] : []),
  ];
  for (const [where, name] of refs) {
    try {
      getAttack(name);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(err.message, undefined, where);
      throw err;
    }
  }
  for (const [name, params] of Object.entries(cfg.eval.params)) {
    let attack;
    try {
      attack = getAttack(name);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(err.message, undefined, `eval.params.${name}`);
      throw err;
    }
    try {
      parseAttackParams(attack.name, attack.paramsSchema, params);
    } catch (err) {
      if (err instanceof UserError) throw new UserError(err.detail.replace(/^attack parameter [^:]+: /, ''), undefined, `eval.params.${err.where ?? name}`);
      throw err;
    }
  }
}

function resolveCheckpointPath(runDir: string, choice: string): { dir: string; tag: string } {
  if (choice === 'last' || choice === 'best') return { dir: runLayout(runDir).checkpoints, tag: choice };
  const p = path.resolve(choice);
  if (!p.endsWith('.json')) throw new UserError(`expected last, best or a checkpoint sidecar path (…/<tag>.json), found '${choice}'`, undefined, '--checkpoint');
  return { dir: path.dirname(p), tag: path.basename(p, '.json') };
}

/** Channels of the layer the mask multiplies (one eval forward of a single blank image). */
function maskChannels(model: Model): number {
  return tf.tidy(() => {
    const taps = model.forward(tf.zeros([1, ...model.inputShape]) as tf.Tensor4D, { training: false }).taps;
    const shape = taps[model.maskTap].shape;
    return shape[shape.length - 1];
  });
}

/** `resume`: the newest checkpoint that verifies, last before best; null when there is none at all. */
function loadForResume(layout: RunLayout, model: Model, skipped: string[]): LoadedRunCheckpoint | null {
  const dir = layout.checkpoints;
  // A tag was committed once if its sidecar or its plain-named weights (linked after the commit)
  // exist. Only content-named data files mean the first save was interrupted before its commit:
  // nothing was ever saved, so the run starts over.
  const committed = (tag: string) => fs.existsSync(sidecarPath(dir, tag)) || fs.existsSync(checkpointPaths(dir, tag).weights);
  const tags = ['last', 'best'].filter(committed);
  if (tags.length === 0) return null;
  const problems: string[] = [];
  const errors: UserError[] = [];
  for (const tag of tags) {
    try {
      const loaded = loadCheckpoint(dir, tag, model);
      skipped.push(...problems);
      return { dir, tag, ...loaded };
    } catch (err) {
      if (!(err instanceof UserError)) throw err;
      problems.push(`${tag}: ${err.message}`);
      errors.push(err);
    }
  }
  if (errors.length === 1) throw errors[0];
  throw new UserError(
    `no checkpoint of this run can be loaded, so it cannot be resumed (and is not started over: it has checkpoint files). ` +
      `Found: ${problems.join('; ')}. Move the run aside to start again`,
    dir,
  );
}

export async function openRun(req: OpenRunRequest, opts: OpenRunOptions = {}): Promise<OpenedRun> {
  let cfg: ExperimentConfig;
  let configFile: string | undefined;
  let layout: RunLayout | null = null;
  if (req.kind === 'new') {
    cfg = req.cfg;
    configFile = req.configFile;
  } else {
    layout = runLayout(req.runDir);
    if (!fs.existsSync(req.runDir)) throw new UserError('no such run directory', req.runDir);
    if (!fs.statSync(req.runDir).isDirectory()) throw new UserError('not a run directory (a file, not a folder)', req.runDir);
    if (!fs.existsSync(layout.config)) throw new UserError('not a run directory (config.yaml missing)', req.runDir);
    // Its folders are folders and its files regular files, before any of them is read.
    checkRunDirShape(layout);
    configFile = layout.config;
    cfg = loadConfig(layout.config);
  }
  applyNativeThreads(cfg.threads);
  const backend = await initBackend(cfg.backend);
  if (req.kind === 'new' && cfg.threads === undefined && backend.native?.loaded) cfg = { ...cfg, threads: nativeThreads() ?? undefined };
  let model: Model | null = null;
  try {
    checkConfigAttacks(cfg);
    const dataset = await loadDataset(cfg.data, cfg.seed, { log: (msg) => opts.onNote?.(msg) });
    model = buildModel(cfg.model, dataset.numClasses, dataset.shape, new Rng(cfg.seed).fork('init'));
    const skippedCheckpoints: string[] = [];
    let checkpoint: LoadedRunCheckpoint | null = null;
    if (req.kind === 'existing' && req.checkpoint !== 'none') {
      if (req.checkpoint === 'resume') checkpoint = loadForResume(layout!, model, skippedCheckpoints);
      else {
        const { dir, tag } = resolveCheckpointPath(req.runDir, req.checkpoint);
        checkpoint = { dir, tag, ...loadCheckpoint(dir, tag, model) };
      }
    }
    const built = model;
    const maskOf = (c: LoadedRunCheckpoint | null): Float32Array | null => {
      const mask = c?.sidecar.mask;
      if (!mask) return null;
      const channels = maskChannels(built);
      if (mask.length !== channels || mask.some((v) => v !== 0 && v !== 1)) {
        throw new UserError(
          `the stored channel mask must be ${channels} entries of 0 or 1 (one per channel of ${built.maskTap}); found ${mask.length} entries`,
          sidecarPath(c.dir, c.tag),
          'mask',
        );
      }
      return cfg.ib.mask.applyAtEval ? Float32Array.from(mask) : null;
    };
    const evalMask = maskOf(checkpoint);
    const opened: OpenedRun = {
      cfg,
      configFile,
      backend,
      dataset,
      model,
      layout,
      checkpoint,
      skippedCheckpoints,
      evalMask,
      createDir() {
        if (opened.layout) return opened.layout;
        const dir = createRunDir(cfg.runsDir, cfg.name);
        opened.layout = runLayout(dir);
        // Atomic: a kill while writing must not leave a half config that blocks --resume.
        writeFileAtomic(opened.layout.config, configToYaml(cfg));
        return opened.layout;
      },
      useCheckpoint(choice) {
        const where = opened.layout ? opened.layout.dir : '.';
        const { dir, tag } = resolveCheckpointPath(where, choice);
        const loaded = { dir, tag, ...loadCheckpoint(dir, tag, built) };
        opened.evalMask = maskOf(loaded);
        opened.checkpoint = loaded;
        return loaded;
      },
      target() {
        const mask = opened.evalMask;
        return targetFromModel(built, { channelMask: mask ? constantMaskHook(mask) : undefined });
      },
      dispose() {
        built.dispose();
      },
    };
    return opened;
  } catch (err) {
    model?.dispose();
    throw inConfigFile(err, configFile);
  }
}
