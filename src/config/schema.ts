// The single description of an experiment config. Every TypeScript type for configs is
// inferred from this schema; nothing else re-declares it. Unknown keys are errors.
import { z } from 'zod';
import { BACKENDS } from '../engine/backends';
import { formatBytes, MAX_BUFFER_BYTES } from '../engine/safe-read';
import { archFacts, DATASET_FACTS } from './facts';

export const DATASETS = ['cifar10', 'cifar100', 'mnist', 'fashion-mnist', 'svhn', 'tiny-imagenet', 'synthetic'] as const;
export const ARCHS = ['small-cnn', 'vgg16', 'resnet18', 'wrn'] as const;
export const TRAIN_METHODS = ['ce', 'pgd-at', 'trades', 'mart', 'hbar', 'vib'] as const;

/**
 * The seeds the RNG tells apart: it takes a seed as a 32-bit unsigned integer
 * (src/engine/rng.ts, `seed >>> 0`), so 2^32 would give exactly the run of seed 0.
 */
export const MAX_SEED = 0xffffffff;
export const seedSchema = z
  .number()
  .int()
  .min(0)
  .max(MAX_SEED, `the RNG takes 32-bit seeds, 0..${MAX_SEED}; a larger one would repeat the run of a smaller one`);

/** A number, or a fraction string such as "8/255". */
export const fraction = z.union([
  z.number(),
  z
    .string()
    .regex(/^\s*[0-9.eE+-]+\s*(\/\s*[0-9.eE+-]+\s*)?$/, 'a number or a fraction like "8/255"')
    .transform((s) => {
      const [a, b] = s.split('/').map((t) => Number(t.trim()));
      return b === undefined ? a : a / b;
    }),
]).pipe(z.number().finite());

/** An L∞ budget on pixels in [0, 1]: a number or fraction in [0, 1] (8/255, not 8). */
export const epsilon = fraction.pipe(
  z.number().min(0, 'ε must be ≥ 0').max(1, 'ε is an L∞ budget on pixels in [0, 1]; write 8/255, not 8'),
);

const subset = z
  .object({
    n: z.number().int().positive(),
    /** first: the first n in file order; random: a seeded, class-balanced random n. */
    mode: z.enum(['first', 'random']).default('first'),
  })
  .strict();

const dataSchema = z
  .object({
    dataset: z.enum(DATASETS),
    /** Folder holding `<dataset>/` subfolders; else $IBRAR_DATA, else ./data. */
    root: z.string().optional(),
    /** Run `ibrar data fetch` automatically when files are missing. */
    autoFetch: z.boolean().default(false),
    /**
     * For datasets whose training split is not on disk (MNIST/Fashion-MNIST test-only copies):
     * use the last `holdout` test images as the test set and the rest for training.
     */
    splitFromTest: z.number().int().positive().optional(),
    /** SVHN only: append the 531,131 `extra_32x32.mat` images to the training split. */
    svhnExtra: z.boolean().default(false),
    trainSubset: subset.optional(),
    testSubset: subset.optional(),
    augment: z
      .object({
        /** Random crop with this much zero padding (paper code: 4). 0 disables. */
        cropPadding: z.number().int().min(0).default(0),
        horizontalFlip: z.boolean().default(false),
      })
      .strict()
      .default({}),
    synthetic: z
      .object({
        height: z.number().int().positive().default(8),
        width: z.number().int().positive().default(8),
        channels: z.number().int().positive().default(3),
        classes: z.number().int().min(2).default(4),
        trainSize: z.number().int().positive().default(512),
        testSize: z.number().int().positive().default(256),
        /** Noise std around each class prototype (larger = harder). */
        noise: z.number().min(0).default(0.15),
      })
      .strict()
      .default({}),
  })
  .strict();

/** The VIB head (Alemi et al.; docs/method.md §6), used when `model.head: vib`. */
export const vibSchema = z
  .object({
    /** Bottleneck width K. */
    k: z.number().int().positive().default(256),
    /** Softmaxes averaged at evaluation (training draws one sample). */
    samples: z.number().int().positive().default(12),
    /** Weight β of the KL term (read by `train.method: vib`). */
    beta: z.number().min(0).default(1e-3),
  })
  .strict();

const modelSchema = z
  .object({
    arch: z.enum(ARCHS),
    /** `vib`: a stochastic encoder + linear decoder on the last tap instead of the linear classifier. */
    head: z.enum(['linear', 'vib']).optional(),
    vib: vibSchema.optional(),
    width: z.number().positive().default(1),
    depth: z.number().int().positive().default(28),
    widen: z.number().int().positive().default(10),
    dropout: z.number().min(0).max(1).default(0),
    normalize: z
      .object({ mean: z.array(z.number()), std: z.array(z.number().positive()) })
      .strict()
      .nullable()
      .default(null),
  })
  .strict();

/** The authors' PGD step rule (train_AT.py, attack_loader): α = ε/steps·2.3. */
export function pgdStepSize(eps: number, steps: number): number {
  return (eps / steps) * 2.3;
}

/** TRADES' own KL adversary steps by 0.007 (Zhang et al.'s recipe). */
export const TRADES_KL_STEP = 0.007;

const attackTrainSchema = z
  .object({
    eps: epsilon.default(0.03),
    /** Step size; default ε/steps·2.3 (the authors' code), 0.007 for TRADES' original KL adversary. Resolved when the config is. */
    alpha: fraction.refine((v) => v > 0, 'must be > 0').optional(),
    steps: z.number().int().positive().default(10),
    randomStart: z.boolean().default(true),
  })
  .strict();

/** HBaR (Wang et al. 2021; docs/method.md §6): its HSIC terms on the clean taps, on top of `base`. */
export const hbarSchema = z
  .object({
    base: z.enum(['ce', 'pgd-at', 'trades', 'mart']).default('ce'),
    /** λ_x; default 0.006 with base ce, 5e-4 with adversarial training (HBaR's CIFAR-10 scripts). Resolved when the config is. */
    lambdaX: z.number().finite().optional(),
    /** λ_y; default 0.05 with base ce, 5e-3 with adversarial training. */
    lambdaY: z.number().finite().optional(),
    layers: z.union([z.enum(['all', 'robust']), z.array(z.string()).min(1)]).default('all'),
    sigma: z.number().positive().default(5),
    yKernel: z.enum(['linear', 'gaussian']).default('linear'),
  })
  .strict();

/** Held-out monitoring during training, on the first `n` test examples. */
export const monitorSchema = z
  .object({
    /** Record HSIC(X,T_l), HSIC(Y,T_l) of every tap every N steps (info_plane.jsonl). */
    infoPlaneEvery: z.number().int().positive().optional(),
    /** Record clean and adversarial accuracy every N epochs (adv_curve.jsonl). */
    advAccEvery: z.number().int().positive().optional(),
    n: z.number().int().positive().default(100),
    /** Attack for advAccEvery (eps and steps from `eval`). */
    attack: z.string().default('pgd'),
  })
  .strict();

const trainSchema = z
  .object({
    method: z.enum(TRAIN_METHODS).default('ce'),
    epochs: z.number().int().positive().default(60),
    batchSize: z.number().int().positive().default(100),
    evalBatchSize: z.number().int().positive().default(200),
    lr: z.number().positive().default(0.01),
    momentum: z.number().min(0).max(1).default(0.9),
    weightDecay: z.number().min(0).default(0),
    schedule: z
      .object({
        type: z.enum(['step', 'none']).default('step'),
        stepSize: z.number().int().positive().default(20),
        gamma: z.number().positive().default(0.2),
      })
      .strict()
      .default({}),
    /** Adversary used to make training examples (PGD-AT, TRADES, MART). */
    attack: attackTrainSchema.default({}),
    trades: z
      .object({
        variant: z.enum(['original', 'ibrar-code']).default('ibrar-code'),
        /** Weight of the KL term; default 6 for `original` (Zhang et al.), 0.5 for `ibrar-code`. Resolved when the config is. */
        beta: z.number().min(0).optional(),
      })
      .strict()
      .default({}),
    mart: z.object({ beta: z.number().min(0).default(0.5) }).strict().default({}),
    /** Optional mid-epoch recovery checkpoint every N steps. */
    checkpointEvery: z.number().int().positive().optional(),
    nanPolicy: z.enum(['stop', 'skip']).default('stop'),
    /** Reproduce the reference scripts' extra train-mode forward per step (double BN update). */
    doubleBnUpdate: z.boolean().default(false),
    hbar: hbarSchema.optional(),
    monitor: monitorSchema.optional(),
    /**
     * Fine-tuning: start from the weights (parameters and BatchNorm statistics) of another run's
     * checkpoint instead of a fresh initialisation: a run directory (its `last` checkpoint) or a
     * checkpoint sidecar (`RUN/checkpoints/best.json`). Optimizer state, epochs, the LR schedule
     * and the channel mask start afresh. Saved as an absolute path.
     */
    initFrom: z.string().min(1).optional(),
    /** Write TensorBoard event files into `<run>/tb/` (training scalars, monitoring, evaluations). */
    tensorboard: z.boolean().default(true),
  })
  .strict();

const maskSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** paper: drop the ⌊drop·C⌋ lowest-I(f_c;Y) channels (Eq. 3); code: the authors' fc_filter rule. */
    rule: z.enum(['paper', 'code']).default('paper'),
    drop: z.number().min(0).max(1).default(0.05),
    lowY: z.number().int().min(0).default(10),
    highX: z.number().int().min(0).default(10),
    /** Recompute (and apply) the mask every N training batches (code: 10; paper: 1). */
    every: z.number().int().positive().default(1),
    /** The code skips batch 0 (`batch_idx != 0`). */
    skipFirstBatch: z.boolean().default(false),
    /** The code scores channels 0..C-2 only (an off-by-one); true reproduces it. */
    skipLastChannel: z.boolean().default(false),
    /** Algorithm 1 keeps the mask in the forward pass; the code never applies it at test time. */
    applyAtEval: z.boolean().default(true),
  })
  .strict();

const ibSchema = z
  .object({
    enabled: z.boolean().default(false),
    /** Tap names, or the presets `all` / `robust`. */
    layers: z.union([z.enum(['all', 'robust']), z.array(z.string()).min(1)]).default('robust'),
    alpha: z.number().finite().default(0.008),
    beta: z.number().finite().default(0.08),
    sigma: z.number().positive().default(5),
    yKernel: z.enum(['linear', 'gaussian']).default('linear'),
    /** X in HSIC(X,T): the clean batch (paper, code default) or the adversarial one. */
    input: z.enum(['clean', 'adversarial']).default('clean'),
    mask: maskSchema.default({}),
  })
  .strict();

const evalSchema = z
  .object({
    /** Attacks to run at the end of `ibrar train` (names from the attack registry). */
    attacks: z.array(z.string()).default([]),
    eps: epsilon.default(0.03),
    steps: z.number().int().positive().optional(),
    n: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(200),
    checkpoint: z.enum(['last', 'best']).default('last'),
    /** Seed of the attacks' randomness (random starts, Square's draws). */
    seed: seedSchema.default(0),
    /** Per-attack parameters, e.g. {cw: {c: 1}, pgd: {restarts: 5}}; checked against each attack's schema. */
    params: z.record(z.record(z.unknown())).default({}),
  })
  .strict();

const probeSchema = z
  .object({
    /** A layer is recommended as robust if its adversarial accuracy beats CE by this many points. */
    margin: z.number().default(1),
    attack: z.string().default('pgd'),
  })
  .strict();

export const experimentObject = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-"'),
    seed: seedSchema.default(0),
    backend: z.enum(BACKENDS).default('auto'),
    /**
     * Threads of the native CPU kernels. Results depend on it (reductions are split per thread),
     * so a new run records the count it uses (IBRAR_NATIVE_THREADS, else the number of cores)
     * here and resume and eval apply it again.
     */
    threads: z.number().int().positive().max(1024).optional(),
    /** Folder under which `<name>/<timestamp>/` run dirs are made. */
    runsDir: z.string().default('runs'),
    data: dataSchema,
    model: modelSchema,
    train: trainSchema.default({}),
    ib: ibSchema.default({}),
    eval: evalSchema.default({}),
    probe: probeSchema.default({}),
  })
  .strict();

type Parsed = z.output<typeof experimentObject>;
type Resolved<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: Exclude<T[P], undefined> };

/** A resolved config: every default that depends on other values is filled in. */
export type ExperimentConfig = Omit<Parsed, 'train'> & {
  train: Omit<Parsed['train'], 'attack' | 'trades'> & {
    attack: Resolved<Parsed['train']['attack'], 'alpha'>;
    trades: Resolved<Parsed['train']['trades'], 'beta'>;
  };
};

/** HBaR's published CIFAR-10 weights: 0.006/0.05 without AT, 5e-4/5e-3 with adversarial training. */
function hbarDefaults(h: HbarConfig): HbarConfig {
  const adversarial = h.base !== 'ce';
  return { ...h, lambdaX: h.lambdaX ?? (adversarial ? 5e-4 : 0.006), lambdaY: h.lambdaY ?? (adversarial ? 5e-3 : 0.05) };
}

/**
 * Defaults that depend on other values, filled in once here so that the saved config.yaml is
 * the whole truth: the training adversary's step size, TRADES' β, HBaR's λs and the VIB head's settings.
 */
function resolveDefaults(cfg: Parsed): ExperimentConfig {
  const t = cfg.train;
  const original = t.method === 'trades' && t.trades.variant === 'original';
  return {
    ...cfg,
    model: cfg.model.head === 'vib' ? { ...cfg.model, vib: cfg.model.vib ?? vibSchema.parse({}) } : cfg.model,
    train: {
      ...t,
      attack: { ...t.attack, alpha: t.attack.alpha ?? (original ? TRADES_KL_STEP : pgdStepSize(t.attack.eps, t.attack.steps)) },
      trades: { ...t.trades, beta: t.trades.beta ?? (t.trades.variant === 'original' ? 6 : 0.5) },
      hbar: t.method === 'hbar' ? hbarDefaults(t.hbar ?? hbarSchema.parse({})) : t.hbar,
    },
  };
}

type Ctx = z.RefinementCtx;

/** A custom issue whose message says everything (no "(found …)" appended). */
function bare(ctx: Ctx, path: (string | number)[], message: string): void {
  ctx.addIssue({ code: 'custom', path, message, params: { bare: true } });
}

/** Layer lists against the architecture's taps, and the channel mask against its width. */
function checkArchitecture(cfg: Parsed, ctx: Ctx): void {
  const m = cfg.model;
  const facts = archFacts(m);
  if (!facts) {
    if (m.arch === 'wrn') bare(ctx, ['model', 'depth'], `must be 6n+4 with n ≥ 1 (10, 16, 22, 28, …) for wrn, got ${m.depth}`);
    return;
  }
  const lists: Array<[(string | number)[], unknown]> = [
    [['ib', 'layers'], cfg.ib.layers],
    [['train', 'hbar', 'layers'], cfg.train.hbar?.layers],
  ];
  for (const [at, spec] of lists) {
    if (!Array.isArray(spec)) continue;
    const unknown = spec.filter((n) => !facts.taps.includes(n));
    if (unknown.length) {
      bare(ctx, at, `unknown tap${unknown.length > 1 ? 's' : ''} ${unknown.map((n) => `'${n}'`).join(', ')}; valid taps of ${m.arch}: ${facts.taps.join(', ')}`);
      continue;
    }
    const dup = spec.filter((n, i) => spec.indexOf(n) !== i);
    if (dup.length) bare(ctx, at, `lists ${[...new Set(dup)].map((n) => `'${n}'`).join(', ')} more than once`);
  }
  const mask = cfg.ib.mask;
  if (mask.enabled && mask.rule === 'code' && mask.lowY + mask.highX >= facts.maskChannels) {
    const size = m.arch === 'wrn' ? `model.widen ${m.widen}` : `model.width ${m.width}`;
    bare(
      ctx,
      ['ib', 'mask'],
      `lowY + highX = ${mask.lowY + mask.highX}, but the mask tap ${facts.maskTap} of ${m.arch} (${size}) has ${facts.maskChannels} channels: ` +
        `the code rule would drop every channel; keep lowY + highX below ${facts.maskChannels}`,
    );
  }
}

/** Sizes the data section asks for against what the dataset has (official sizes, or data.synthetic). */
function checkDataSizes(cfg: Parsed, ctx: Ctx): void {
  const d = cfg.data;
  let shape: readonly [number, number, number];
  let train: number;
  let test: number;
  let source: string;
  if (d.dataset === 'synthetic') {
    const s = d.synthetic;
    shape = [s.height, s.width, s.channels];
    const image = s.height * s.width * s.channels;
    const needs: Array<[string, number]> = [
      ['trainSize', s.trainSize * image],
      ['testSize', s.testSize * image],
      ['classes', s.classes * image * 4],
    ];
    for (const [key, bytes] of needs) {
      if (bytes > MAX_BUFFER_BYTES) {
        bare(ctx, ['data', 'synthetic', key], `${s[key as 'trainSize']} × ${shape.join('x')} needs ${formatBytes(bytes)} in one buffer; at most ${formatBytes(MAX_BUFFER_BYTES)} fit`);
        return;
      }
    }
    [train, test, source] = [s.trainSize, s.testSize, 'the synthetic'];
  } else {
    const f = DATASET_FACTS[d.dataset];
    shape = f.shape;
    [train, test, source] = [f.train + (d.svhnExtra && f.extra ? f.extra : 0), f.test, `the official ${d.dataset}`];
  }
  if (d.splitFromTest !== undefined) {
    if (d.splitFromTest >= test) {
      bare(ctx, ['data', 'splitFromTest'], `${d.splitFromTest} is not below the ${test} images of ${source} test set; it must be below ${test} to leave training images`);
      return;
    }
    [train, test] = [test - d.splitFromTest, d.splitFromTest];
  }
  const subsets: Array<['trainSubset' | 'testSubset', number, string]> = [
    ['trainSubset', train, 'training'],
    ['testSubset', test, 'test'],
  ];
  for (const [key, have, what] of subsets) {
    const n = d[key]?.n;
    if (n !== undefined && n > have) bare(ctx, ['data', key, 'n'], `${n} is more than the ${have} images of ${source} ${what} split${d.splitFromTest !== undefined ? ` (after data.splitFromTest: ${d.splitFromTest})` : ''}`);
  }
  const side = Math.min(shape[0], shape[1]);
  if (d.augment.cropPadding >= side) {
    bare(ctx, ['data', 'augment', 'cropPadding'], `${d.augment.cropPadding} is not below the image size (${shape[0]}x${shape[1]}): a crop could hold nothing but padding`);
  }
}

/** The training adversary's step size, as resolveDefaults fills it, must be positive where one is used. */
function checkTrainingAdversary(cfg: Parsed, ctx: Ctx): void {
  const t = cfg.train;
  const adversarial = t.method === 'pgd-at' || t.method === 'trades' || t.method === 'mart' || (t.method === 'hbar' && (t.hbar?.base ?? 'ce') !== 'ce');
  if (!adversarial || t.attack.alpha !== undefined) return;
  const original = t.method === 'trades' && t.trades.variant === 'original';
  const alpha = original ? TRADES_KL_STEP : pgdStepSize(t.attack.eps, t.attack.steps);
  if (!(alpha > 0)) {
    bare(ctx, ['train', 'attack', 'alpha'], `the step size defaults to ε/steps·2.3, which is ${alpha} with train.attack.eps ${t.attack.eps}; train.method '${t.method}' needs a positive step: set train.attack.eps (or train.attack.alpha) above 0`);
  }
}

export const experimentSchema = experimentObject
  .superRefine((cfg, ctx) => {
    checkArchitecture(cfg, ctx);
    checkDataSizes(cfg, ctx);
    checkTrainingAdversary(cfg, ctx);
    if (cfg.train.method === 'vib' && cfg.model.head !== 'vib') {
      ctx.addIssue({ code: 'custom', path: ['model', 'head'], message: "train.method 'vib' needs model.head: vib" });
    }
    if (cfg.data.svhnExtra && cfg.data.dataset !== 'svhn') {
      ctx.addIssue({ code: 'custom', path: ['data', 'svhnExtra'], message: `applies to dataset svhn only (this config uses ${cfg.data.dataset})` });
    }
    if (cfg.train.method === 'hbar' && cfg.ib.enabled) {
      ctx.addIssue({ code: 'custom', path: ['ib', 'enabled'], message: "train.method 'hbar' brings its own HSIC terms (train.hbar); set ib.enabled: false" });
    }
  })
  .transform(resolveDefaults);

export type ExperimentInput = z.input<typeof experimentSchema>;
export type DataConfig = ExperimentConfig['data'];
export type ModelConfig = ExperimentConfig['model'];
export type TrainConfig = ExperimentConfig['train'];
export type IbConfig = ExperimentConfig['ib'];
export type MaskConfig = IbConfig['mask'];
export type EvalConfig = ExperimentConfig['eval'];
export type TrainAttackConfig = TrainConfig['attack'];
export type VibConfig = z.infer<typeof vibSchema>;
export type HbarConfig = z.infer<typeof hbarSchema>;
export type MonitorConfig = z.infer<typeof monitorSchema>;
