// Sweep expansion without running anything: the grid, exclude/include, stable ids and names,
// every invalid cell reported at once, and how the cores are split among workers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import * as YAML from 'yaml';
import { expandGrid, loadSweepFile, resolveSweep, valueLabel, cellId } from '../../src/jobs/sweep/grid';
import { planSweep } from '../../src/jobs/sweep/sweep';
import { planThreads, DEFAULT_THREADS_PER_WORKER } from '../../src/jobs/pool';
import { arrayRanges, cellsScript } from '../../src/jobs/sweep/slurm';
import { groupName } from '../../src/report/aggregate';
import { UserError } from '../../src/errors';
import { tempDir } from '../helpers/configs';
import { spawnCli } from '../reliability/cli';

const base = () => ({
  name: 'tiny',
  seed: 0,
  backend: 'wasm',
  runsDir: path.join(tempDir('ibrar-sweep-grid-'), 'runs'),
  data: { dataset: 'synthetic', synthetic: { height: 8, width: 8, trainSize: 64, testSize: 32 } },
  model: { arch: 'small-cnn', width: 0.25 },
  train: { method: 'ce', epochs: 1, batchSize: 32 },
  ib: { layers: ['conv3', 'fc1'] },
});

const expand = (doc: Record<string, unknown>) => expandGrid(resolveSweep(doc));

test('the grid: product of the axes (first axis slowest), names with the seed last, ids from the resolved config', () => {
  const g = expand({ base: base(), axes: { 'train.method': ['ce', 'pgd-at', 'trades'], 'ib.enabled': [false, true], seed: [0, 1] } });
  assert.equal(g.cells.length, 12);
  assert.deepEqual(g.columns, ['train.method', 'ib.enabled', 'seed']);
  assert.deepEqual(
    g.cells.slice(0, 5).map((c) => c.name),
    ['tiny-ce-no-ib-s0', 'tiny-ce-no-ib-s1', 'tiny-ce-ib-s0', 'tiny-ce-ib-s1', 'tiny-pgd-at-no-ib-s0'],
  );
  assert.deepEqual(g.cells.map((c) => c.index), [...Array(12).keys()]);
  for (const c of g.cells) {
    assert.match(c.id, /^[0-9a-f]{12}$/);
    assert.equal(c.config.name, c.name);
    assert.equal(c.config.train.method, c.values['train.method']);
    assert.equal(c.config.ib.enabled, c.values['ib.enabled']);
    assert.equal(c.config.seed, c.values.seed);
    // `ibrar report` averages the cells that differ only in seed.
    assert.equal(groupName(c.name), c.name.replace(/-s\d$/, ''));
  }
  assert.equal(new Set(g.cells.map((c) => c.id)).size, 12);
  // List values (IB layer sets), numbers and nested booleans read well in names.
  const h = expand({ base: base(), axes: { 'ib.layers': [['conv3'], ['conv3', 'fc1']], 'ib.alpha': [0.1], 'ib.mask.enabled': [true] } });
  assert.deepEqual(h.cells.map((c) => c.name), ['tiny-conv3-alpha0.1-mask', 'tiny-conv3_fc1-alpha0.1-mask']);
  assert.deepEqual(h.cells[1].config.ib.layers, ['conv3', 'fc1']);
  assert.equal(valueLabel('seed', 7), 's7');
  assert.equal(valueLabel('train.attack.eps', 0.03), 'eps0.03');
  assert.equal(valueLabel('ib.enabled', false), 'no-ib');
});

test('ids are stable under key order, the base given as a file, and what the sweep itself sets', () => {
  const b = base();
  const reordered = {
    ib: { layers: ['conv3', 'fc1'] },
    train: { batchSize: 32, epochs: 1, method: 'ce' },
    model: { width: 0.25, arch: 'small-cnn' },
    data: { synthetic: { testSize: 32, trainSize: 64, width: 8, height: 8 }, dataset: 'synthetic' },
    runsDir: b.runsDir,
    backend: 'wasm',
    seed: 0,
    name: 'tiny',
  };
  const a = expand({ base: b, axes: { 'ib.enabled': [false, true], seed: [0, 1] } });
  const r = expand({ axes: { 'ib.enabled': [false, true], seed: [0, 1] }, base: reordered });
  assert.deepEqual(r.cells.map((c) => [c.id, c.name]), a.cells.map((c) => [c.id, c.name]));
  // A base config file next to the sweep file.
  const dir = tempDir('ibrar-sweep-file-');
  fs.mkdirSync(path.join(dir, 'configs'));
  fs.writeFileSync(path.join(dir, 'configs', 'base.yaml'), YAML.stringify(reordered));
  fs.writeFileSync(path.join(dir, 'sweep.yaml'), YAML.stringify({ base: 'configs/base.yaml', axes: { 'ib.enabled': [false, true], seed: [0, 1] } }));
  const f = expandGrid(loadSweepFile(path.join(dir, 'sweep.yaml')));
  assert.deepEqual(f.cells.map((c) => c.id), a.cells.map((c) => c.id));
  // Where the sweep runs, its threads and the name do not change a cell's id; any other value does.
  const c = a.cells[0].config;
  assert.equal(cellId({ ...c, runsDir: '/elsewhere', threads: 7, name: 'other' }), a.cells[0].id);
  assert.notEqual(cellId({ ...c, train: { ...c.train, lr: 0.02 } }), a.cells[0].id);
  // The sweep's eval section overrides the base's, and changes the ids.
  const e = expand({ base: b, axes: { 'ib.enabled': [false, true], seed: [0, 1] }, eval: { attacks: ['fgsm'], eps: '8/255' } });
  assert.deepEqual(e.cells[0].config.eval.attacks, ['fgsm']);
  assert.equal(e.cells[0].config.eval.eps, 8 / 255);
  assert.notEqual(e.cells[0].id, a.cells[0].id);
});

test('exclude drops matching grid cells, include adds cells (not subject to exclude), duplicates run once', () => {
  const g = expand({
    base: base(),
    axes: { 'train.method': ['ce', 'pgd-at'], 'ib.enabled': [false, true], seed: [0, 1] },
    exclude: [{ 'train.method': 'pgd-at', 'ib.enabled': true }, { 'train.method': 'mart' }],
    include: [
      { 'train.method': 'pgd-at', 'ib.enabled': true, seed: 5, 'ib.alpha': 0.1 },
      { 'train.method': 'ce', 'ib.enabled': false, seed: 0 },
    ],
  });
  assert.deepEqual(g.cells.map((c) => c.name), [
    'tiny-ce-no-ib-s0',
    'tiny-ce-no-ib-s1',
    'tiny-ce-ib-s0',
    'tiny-ce-ib-s1',
    'tiny-pgd-at-no-ib-s0',
    'tiny-pgd-at-no-ib-s1',
    'tiny-pgd-at-ib-alpha0.1-s5',
  ]);
  const inc = g.cells[6];
  assert.equal(inc.origin, 'include');
  assert.equal(inc.config.ib.alpha, 0.1);
  assert.deepEqual(Object.keys(inc.values), ['train.method', 'ib.enabled', 'seed', 'ib.alpha']);
  assert.ok(g.notes.some((n) => /exclude rule 2 .* matches no cell/.test(n)), g.notes.join('\n'));
  assert.ok(g.notes.some((n) => /same config as cell 0; run once/.test(n)), g.notes.join('\n'));
  // An include cell takes the base's values for the axes it does not set.
  const h = expand({ base: base(), axes: { seed: [0, 1] }, include: [{ 'train.epochs': 3 }] });
  assert.deepEqual(h.cells.map((c) => c.name), ['tiny-s0', 'tiny-s1', 'tiny-epochs3-s0']);
  assert.throws(() => expand({ base: base(), axes: { seed: [0] }, exclude: [{ 'train.method': 'ce' }] }), /exclude rules match axis values; 'train.method' is not an axis/);
  assert.throws(() => expand({ base: base(), axes: { seed: [0] }, exclude: [{ seed: 0 }] }), /no cells/);
});

test('every invalid cell is reported, before anything runs', () => {
  let err: unknown;
  try {
    expand({
      base: base(),
      axes: { 'train.method': ['ce', 'pgd'], seed: [0, -1], 'ib.enabled': [true] },
      include: [{ 'ib.layers': ['block9'], 'ib.enabled': true }, { 'train.epochs.x': 1 }, { 'train.foo': 1 }],
      eval: { attacks: ['fgsm'] },
    });
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof UserError);
  const msg = (err as Error).message;
  assert.match(msg, /6 of 7 cells are invalid; nothing was run/);
  assert.match(msg, /cell 1 \(train\.method="ce", seed=-1, ib\.enabled=true\): seed: .*0/);
  assert.match(msg, /cell 2 \(train\.method="pgd", seed=0, ib\.enabled=true\): train\.method: expected one of 'ce', 'pgd-at'/);
  assert.match(msg, /cell 3 .*train\.method: expected one of/);
  assert.match(msg, /cell 4 .*unknown tap 'block9'; valid taps of small-cnn: conv1, conv2, conv3, fc1/);
  assert.match(msg, /cell 5 .*'train\.epochs' is the value 1, not a section/);
  assert.match(msg, /cell 6 .*train\.foo: unknown key/);
  assert.doesNotMatch(msg, /cell 0 /);
  // Unknown attacks, diagnostics without an evaluation, keys the sweep sets itself, typos in the sweep file.
  assert.throws(() => expand({ base: base(), axes: { 'eval.attacks': [['fgsm'], ['pgdd']] } }), /1 of 2 cells are invalid[\s\S]*cell 1 .*eval\.attacks\.0/);
  assert.throws(() => expand({ base: base(), axes: { seed: [0] }, diagnose: true }), /diagnose: true needs an evaluation/);
  assert.throws(() => expand({ base: base(), axes: { threads: [1, 2] } }), /the sweep sets name, runsDir and threads/);
  assert.throws(() => expand({ base: base(), axis: { seed: [0] } }), /unknown key axis/);
  assert.throws(() => expand({ base: base(), axes: { seed: [] } }), /at least one value/);
  assert.throws(() => expand({ base: base(), slurm: { time: '4h' } }), /slurm\.time: a Slurm time/);
});

test('the CLI reports invalid cells with exit 2 and writes nothing', async () => {
  const dir = tempDir('ibrar-sweep-cli-');
  const b = { ...base(), runsDir: path.join(dir, 'runs') };
  fs.writeFileSync(path.join(dir, 'sweep.yaml'), YAML.stringify({ base: b, axes: { 'train.method': ['ce', 'trade'], seed: [0, 1] } }));
  const r = await spawnCli(['sweep', '--config', path.join(dir, 'sweep.yaml')]).done;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /2 of 4 cells are invalid; nothing was run/);
  assert.match(r.stderr, /cell 2 .*"trade".*\n.*cell 3 .*"trade"/);
  assert.equal(fs.existsSync(path.join(dir, 'runs')), false);
  const dry = await spawnCli(['sweep', '--config', path.join(dir, 'sweep.yaml'), '--dry-run', '--jobs', '2']).done;
  assert.equal(dry.code, 2);
  fs.writeFileSync(path.join(dir, 'sweep.yaml'), YAML.stringify({ base: b, axes: { 'ib.enabled': [false, true], seed: [0, 1] } }));
  const ok = await spawnCli(['sweep', '--config', path.join(dir, 'sweep.yaml'), '--dry-run', '--jobs', '2']).done;
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /sweep tiny: 4 cells \(ib\.enabled: 2 × seed: 2\); local: 2 workers × \d+ native threads? on \d+ cores/);
  assert.match(ok.stdout, /\| 3 \| [0-9a-f]{12} \| tiny-ib-s1 +\| true +\| 1 +\|/);
  assert.equal(fs.existsSync(path.join(dir, 'runs')), false, 'a local dry run writes nothing');
});

test('thread partitioning: N workers get floor(cores / N) native threads each, never oversubscribing', () => {
  assert.equal(DEFAULT_THREADS_PER_WORKER, 1);
  assert.deepEqual(planThreads(2), { jobs: 2, threads: 1, cores: 2 });
  assert.deepEqual(planThreads(2, { jobs: 1 }), { jobs: 1, threads: 2, cores: 2 });
  assert.deepEqual(planThreads(16, { jobs: 3 }), { jobs: 3, threads: 5, cores: 16 });
  assert.deepEqual(planThreads(8, { tasks: 3 }), { jobs: 3, threads: 2, cores: 8 });
  assert.deepEqual(planThreads(1, { jobs: 4 }), { jobs: 4, threads: 1, cores: 1 });
  for (const cores of [1, 2, 3, 8, 13, 64]) {
    for (const jobs of [1, 2, 3, 5, 8]) {
      const p = planThreads(cores, { jobs });
      assert.ok(p.threads >= 1);
      if (jobs <= cores) assert.ok(p.jobs * p.threads <= cores, `${cores} cores, ${jobs} jobs`);
    }
  }
  // The sweep's plan: local splits the cores, Slurm takes cpusPerTask (or the sweep's threads).
  const loaded = resolveSweep({ base: base(), axes: { seed: [0, 1, 2, 3] }, slurm: { cpusPerTask: 4 } });
  assert.deepEqual([planSweep(loaded, { cores: 8 })].map((p) => [p.jobs, p.threads]), [[4, 2]]);
  assert.deepEqual([planSweep(loaded, { cores: 8, jobs: 2 })].map((p) => [p.jobs, p.threads]), [[2, 4]]);
  assert.equal(planSweep(loaded, { executor: 'slurm' }).threads, 4);
  const fixed = resolveSweep({ base: base(), axes: { seed: [0, 1, 2, 3] }, threads: 3 });
  assert.deepEqual([planSweep(fixed, { cores: 8 })].map((p) => [p.jobs, p.threads]), [[2, 3]]);
});

test('the Slurm script: array ranges with the throttle, resources, one `sweep --cell` per task', () => {
  assert.equal(arrayRanges([0, 1, 2, 3]), '0-3');
  assert.equal(arrayRanges([5, 1, 3, 6, 7]), '1,3,5-7');
  const loaded = resolveSweep({
    base: base(),
    axes: { seed: [0, 1, 2, 3] },
    slurm: { partition: 'gpu', gpus: 1, cpusPerTask: 4, time: '04:00:00', mem: '16G', parallel: 2, extra: ['--qos=long'], setup: ['module load nodejs/20'] },
  });
  const plan = planSweep(loaded, { executor: 'slurm' });
  const state = { name: 'tiny', threads: plan.threads, cells: plan.grid.cells } as never;
  const s = cellsScript({ sweepDir: '/shared/runs/tiny-sweep/x', state, slurm: loaded.sweep.slurm, nodePath: '/usr/bin/node', cliPath: '/opt/ibrar/bin/ibrar.js', cwd: '/home/me' });
  for (const line of [
    '#SBATCH --array=0-3%2',
    '#SBATCH --cpus-per-task=4',
    '#SBATCH --gpus=1',
    '#SBATCH --time=04:00:00',
    '#SBATCH --mem=16G',
    '#SBATCH --partition=gpu',
    '#SBATCH --qos=long',
    'export IBRAR_NATIVE_THREADS=4',
    'module load nodejs/20',
    'exec /usr/bin/node /opt/ibrar/bin/ibrar.js sweep --cell "$SLURM_ARRAY_TASK_ID" /shared/runs/tiny-sweep/x',
  ]) {
    assert.ok(s.split('\n').includes(line), `${line}\nin\n${s}`);
  }
});

test('the shipped sweep files expand (configs/sweeps/)', () => {
  const dir = path.join(__dirname, '..', '..', '..', 'configs', 'sweeps');
  const counts = Object.fromEntries(
    fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => [f, expandGrid(loadSweepFile(path.join(dir, f))).cells.length]),
  );
  assert.deepEqual(counts, { 'cpu-ablation.yaml': 12, 'paper-vgg16-pgd.yaml': 6 });
  const pgd = expandGrid(loadSweepFile(path.join(dir, 'paper-vgg16-pgd.yaml')));
  assert.deepEqual([...new Set(pgd.cells.map((c) => groupName(c.name)))], ['cifar10-vgg16-pgd-no-ib-no-mask', 'cifar10-vgg16-pgd-ib-mask']);
});
