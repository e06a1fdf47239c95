// `ibrar sweep --executor slurm` on a real one-node Slurm 22.05 cluster (test/helpers/slurm-cluster.ts,
// docs/slurm-testing.md): a 4-cell sweep of a tiny config written with --dry-run, then submitted as a
// throttled job array (%2) plus an `afterany` aggregation job that runs `ibrar report`; one cell is
// requeued (`scontrol requeue A_K`) the moment its first checkpoint appears, so Slurm stops it with
// SIGTERM and runs it again, and it must resume its own run from the checkpoint. Checked: every
// cell done, the requeued one with SLURM_RESTART_COUNT recorded and a single run dir, the report,
// `ibrar sweep status` (squeue + the cells' own files), the job-completion log.
// Without the Slurm/munge binaries it says why and passes, unless IBRAR_TEST_REQUIRE_SLURM=1 (CI).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { slurmClusterIfAvailable, waitUntil, type SlurmCluster } from '../helpers/slurm-cluster';
import { tinySweepYaml } from '../helpers/sweeps';
import { readCellRecord, readSweepState } from '../../src/runs/sweep-files';
import { readMetrics } from '../../src/runs/metrics';
import { loadConfig } from '../../src/config/load';
import { tempDir } from '../helpers/configs';
import { BIN, runCli } from '../reliability/cli';

let cluster: SlurmCluster | null = null;
after(async () => {
  await cluster?.stop();
});

const EPOCHS = 6;

const sweepYaml = (runsDir: string) =>
  tinySweepYaml(runsDir, { epochs: EPOCHS, extra: { executor: 'slurm', slurm: { parallel: 2, cpusPerTask: 1, time: '00:20:00', reportTime: '00:10:00' } } });

test('a 4-cell sweep as a Slurm job array with an afterany aggregation job; a requeued cell resumes from its checkpoint', { timeout: 400_000 }, async (t) => {
  cluster = await slurmClusterIfAvailable(t);
  if (!cluster) return;
  const c = cluster;
  const details = async (): Promise<string> => `${(await c.run('squeue', ['-r', '-t', 'all'])).stdout}\n${c.logTail()}`;
  const root = tempDir('ibrar-sweep-slurm-');
  const runsDir = path.join(root, 'runs');
  const file = path.join(root, 'sweep.yaml');
  fs.writeFileSync(file, sweepYaml(runsDir));
  const env = { ...c.env, CI: '1' };

  // --dry-run writes the sweep and its scripts and prints the array script; nothing is queued.
  const dry = await runCli(['sweep', '--config', file, '--dry-run'], { env, cwd: root });
  assert.equal(dry.code, 0, dry.stderr);
  for (const line of ['#SBATCH --array=0-3%2', '#SBATCH --cpus-per-task=1', '#SBATCH --time=00:20:00', 'export IBRAR_NATIVE_THREADS=1']) {
    assert.ok(dry.stdout.split('\n').includes(line), `${line} in\n${dry.stdout}`);
  }
  assert.ok(dry.stdout.includes(`exec ${process.execPath} ${BIN} sweep --cell "$SLURM_ARRAY_TASK_ID" `), dry.stdout);
  assert.match(dry.stderr, /not submitted/);
  assert.equal((await c.runOk('squeue', ['-h', '-r'])).trim(), '', 'the dry run queued nothing');
  const sweepDir = path.join(runsDir, 'tiny-sweep', fs.readdirSync(path.join(runsDir, 'tiny-sweep'))[0]);

  // The real submission continues the dry run's sweep directory (same grid).
  const t0 = Date.now();
  const sub = await runCli(['sweep', '--config', file], { env, cwd: root });
  assert.equal(sub.code, 0, sub.stderr);
  const m = /submitted job array (\d+) \(cells 0-3\) and aggregation job (\d+) \(afterany:\1\)/.exec(sub.stdout);
  assert.ok(m, sub.stdout);
  const [, arrayId, reportId] = m;
  assert.ok(sub.stderr.includes(`sweep dir: ${sweepDir}`), sub.stderr);
  // While the array is queued, submitting again is refused.
  const twice = await runCli(['sweep', '--config', file], { env, cwd: root });
  assert.equal(twice.code, 2, twice.stderr);
  assert.match(twice.stderr, new RegExp(`job array ${arrayId} still has \\d+ task\\(s\\) in the queue`));

  const state = readSweepState(sweepDir)!;
  assert.equal(state.executor, 'slurm');
  assert.equal(state.threads, 1, 'cells get slurm.cpusPerTask native threads');
  // Requeue the first cell that writes a checkpoint: Slurm SIGTERMs it (it checkpoints and exits),
  // holds it for cred_expire + 1 s and runs it again with SLURM_RESTART_COUNT=1.
  let requeued: (typeof state.cells)[number] | undefined;
  await waitUntil(
    () => {
      requeued = state.cells.find((cell) => {
        const rec = readCellRecord(sweepDir, cell.id);
        return rec?.runDir !== undefined && rec.status === 'running' && fs.existsSync(path.join(rec.runDir, 'checkpoints', 'last.json'));
      });
      return requeued !== undefined;
    },
    120_000,
    'a cell with a first checkpoint',
    details,
  );
  await c.runOk('scontrol', ['requeue', `${arrayId}_${requeued!.index}`]);
  t.diagnostic(`requeued cell ${requeued!.index} (${requeued!.name}) ${Date.now() - t0} ms after submission`);

  await waitUntil(
    async () => fs.existsSync(path.join(sweepDir, 'report', 'report.json')) && (await c.run('squeue', ['-h', '-r'])).stdout.trim() === '',
    300_000,
    'the array, the requeued cell and the aggregation job to finish',
    details,
  );
  t.diagnostic(`4 cells (%2) + requeue + aggregation: ${Date.now() - t0} ms from submission to an empty queue`);

  for (const cell of state.cells) {
    const rec = readCellRecord(sweepDir, cell.id)!;
    assert.equal(rec.status, 'done', `cell ${cell.index}: ${JSON.stringify(rec)}\n${fs.readFileSync(path.join(sweepDir, 'slurm', 'logs', `cell-${cell.index}.out`), 'utf8').slice(-2000)}`);
    assert.equal(rec.slurm?.arrayJobId, arrayId);
    assert.equal(rec.slurm?.taskId, String(cell.index));
    assert.equal(loadConfig(path.join(rec.runDir!, 'config.yaml')).threads, 1);
    const runs = fs.readdirSync(path.dirname(rec.runDir!));
    assert.equal(runs.length, 1, `cell ${cell.index}: one run dir`);
    assert.deepEqual(readMetrics(rec.runDir!).map((r) => r.epoch), Array.from({ length: EPOCHS }, (_, i) => i + 1));
  }
  const rq = readCellRecord(sweepDir, requeued!.id)!;
  assert.equal(rq.slurm?.restarts, 1, 'the requeued task ran again with SLURM_RESTART_COUNT=1');
  assert.ok(rq.attempts >= 2, `the requeued cell was started twice (${rq.attempts})`);
  const log = fs.readFileSync(path.join(sweepDir, 'slurm', 'logs', `cell-${requeued!.index}.out`), 'utf8');
  assert.match(log, /SIGTERM: stopping after the current step/, 'Slurm stopped the task with SIGTERM; it checkpointed');
  assert.match(log, /resuming at epoch/, 'the rerun resumed from the checkpoint');

  // The aggregation job's tables: with and without IB, each over seeds 0 and 1.
  const report = JSON.parse(fs.readFileSync(path.join(sweepDir, 'report', 'report.json'), 'utf8'));
  assert.deepEqual(report.rows.map((r: { label: string; seeds: number[] }) => [r.label, [...r.seeds].sort()]).sort(), [['tiny-ib', [0, 1]], ['tiny-no-ib', [0, 1]]]);

  // What the scheduler recorded: the job-completion log (last line per task) and squeue -t all.
  const comp = c.jobComp();
  for (const k of ['0', '1', '2', '3']) {
    const mine = comp.filter((r) => r.ArrayJobId === arrayId && r.ArrayTaskId === k).map((r) => r.JobState);
    assert.equal(mine.at(-1), 'COMPLETED', `task ${k}: ${mine.join(' ')}`);
  }
  assert.equal(comp.find((r) => r.JobId === reportId)?.JobState, 'COMPLETED');

  // `ibrar sweep status`: every cell done, the requeue shown, the aggregation job's state.
  const st = await runCli(['sweep', 'status', sweepDir], { env });
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /4\/4 cells done/);
  assert.match(st.stdout, new RegExp(`job array ${arrayId} \\(cells 0-3\\), aggregation job ${reportId}: completed`));
  assert.match(st.stdout, new RegExp(`\\| ${requeued!.index} +\\| ${requeued!.name} +\\| done +\\| \\d+ \\(1 requeue\\)`));
});
