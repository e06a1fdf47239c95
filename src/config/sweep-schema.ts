// The single description of a sweep file (`ibrar sweep --config sweep.yaml`): a base experiment
// config, the axes to vary, rules that drop or add cells, what runs after each training, and
// how the cells are executed. Every default is here; unknown keys are errors.
import { z } from 'zod';
import { experimentObject } from './schema';

/** A key path into an experiment config: `train.method`, `ib.layers`, `seed`. */
const keyPath = z
  .string()
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/, 'a key path such as train.method or seed')
  .refine((p) => !p.split('.').some((k) => k === 'constructor' || k === 'prototype'), 'not a config key');

/** Key paths the sweep itself sets for every cell, so they cannot vary. */
export const RESERVED_PATHS = ['name', 'runsDir', 'threads'] as const;

/** One cell's worth of values: key path → value (used by `exclude` and `include`). */
const rule = z.record(keyPath, z.unknown()).refine((r) => Object.keys(r).length > 0, 'a rule needs at least one key path');

/**
 * The experiment config's `eval` section, every key optional: the keys given override the base
 * config's (checked against the experiment schema; the cells' own validation fills in defaults).
 */
export const evalOverride = (experimentObject.shape.eval as z.ZodDefault<z.AnyZodObject>)._def.innerType.partial().strict();

/** Slurm time limits: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS. */
const slurmTime = z.string().regex(/^(\d+-)?\d+(:\d+){0,2}$/, 'a Slurm time such as 90, 04:00:00 or 1-12:00:00');

export const slurmSchema = z
  .object({
    partition: z.string().regex(/^[A-Za-z0-9._,-]+$/).optional(),
    account: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
    /** GPUs per cell (`--gpus`); 0 asks for none. */
    gpus: z.number().int().min(0).default(0),
    /** CPUs per cell (`--cpus-per-task`); also the cell's native thread count unless `threads` is set. */
    cpusPerTask: z.number().int().positive().default(1),
    /** Time limit per cell (`--time`). */
    time: slurmTime.optional(),
    /** Memory per cell (`--mem`), e.g. 16G. */
    mem: z.string().regex(/^\d+[KMGT]?$/, 'a Slurm memory size such as 4000M or 16G').optional(),
    /** Array tasks running at once (`--array=…%P`); unset: as many as the scheduler allows. */
    parallel: z.number().int().positive().optional(),
    /** More `#SBATCH` lines, e.g. `--qos=long` or `--constraint=a100`. */
    extra: z.array(z.string().regex(/^[^\n\r]+$/, 'one line')).default([]),
    /** Shell lines run before each cell (e.g. `module load nodejs/20`). */
    setup: z.array(z.string().regex(/^[^\n\r]+$/, 'one line')).default([]),
    /** Time limit of the aggregation job (`ibrar report` over the sweep). */
    reportTime: slurmTime.default('00:30:00'),
  })
  .strict();

export const sweepSchema = z
  .object({
    /** Names the sweep folder `<runsDir>/<name>-sweep/`; default: the base config's name. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-"').optional(),
    /** The base experiment config: a mapping, or a YAML file relative to the sweep file. */
    base: z.union([z.string().min(1), z.record(z.unknown())]),
    /** Key path → the values it takes; the grid is their product, first axis slowest. */
    axes: z.record(keyPath, z.array(z.unknown()).min(1, 'an axis needs at least one value')).default({}),
    /** Cells of the grid matching every key of a rule (axis key paths only) are dropped. */
    exclude: z.array(rule).default([]),
    /** Extra cells: the base config with these values (after `exclude`, which they are not subject to). */
    include: z.array(rule).default([]),
    /** Evaluation after each training: overrides of the base config's `eval` section. */
    eval: evalOverride.optional(),
    /** Run the gradient-masking diagnostics after each cell's evaluation. */
    diagnose: z.boolean().default(false),
    /** The diagnostics' transfer surrogate: none (skip that check), auto (train one per cell), or a run dir. */
    surrogate: z.string().default('none'),
    /** Test examples the diagnostics check (at most the evaluation's n). */
    diagnoseN: z.number().int().positive().default(500),
    /** How often a failing cell is tried again in one `ibrar sweep` invocation (local executor). */
    retries: z.number().int().min(0).default(2),
    executor: z.enum(['local', 'slurm']).default('local'),
    /** Native threads of every cell; default: cores / jobs (local), slurm.cpusPerTask (Slurm). */
    threads: z.number().int().positive().max(1024).optional(),
    slurm: slurmSchema.default({}),
  })
  .strict();

export type SweepFile = z.output<typeof sweepSchema>;
export type SweepInput = z.input<typeof sweepSchema>;
export type SlurmSettings = z.output<typeof slurmSchema>;
