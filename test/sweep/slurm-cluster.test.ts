// The Slurm features `ibrar sweep --executor slurm` builds on, checked on a real one-node cluster
// (test/helpers/slurm-cluster.ts): a throttled job array (`--array=0-3%2`), an aggregation job
// with `--dependency=afterany:<array>`, reading the tasks' final states back without slurmdbd
// (jobcomp/filetxt, `squeue -t all`, `scontrol show job`; plain `sacct` cannot), and requeueing one
// task (running or finished) so that it runs again with SLURM_RESTART_COUNT set, which is what lets
// a requeued cell resume from its checkpoint.
// Without the Slurm/munge packages it reports why and passes, unless IBRAR_TEST_REQUIRE_SLURM=1 (CI).
// Measured on 2 busy cores: node idle after ~1.5 s, the whole file 24-31 s, half of it the requeue
// hold (cred_expire + 1 s).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { slurmClusterIfAvailable, waitUntil, type SlurmCluster } from '../helpers/slurm-cluster';

let cluster: SlurmCluster | null = null;
after(async () => {
  await cluster?.stop();
});

function jobId(parsable: string): string {
  // --parsable prints "<id>" or "<id>;<cluster>".
  const id = parsable.trim().split(';')[0];
  assert.match(id, /^\d+$/, `sbatch --parsable printed ${JSON.stringify(parsable)}`);
  return id;
}

function writeScript(file: string, body: string): string {
  fs.writeFileSync(file, `#!/bin/bash\nset -euo pipefail\n${body}\n`, { mode: 0o755 });
  return file;
}

/** `scontrol -o show job ID` as one key→value record per array task (or per job). */
async function scontrolJobs(c: SlurmCluster, id: string): Promise<Array<Record<string, string>>> {
  const out = await c.runOk('scontrol', ['-o', 'show', 'job', id]);
  return out
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => Object.fromEntries([...l.matchAll(/(?:^|\s)([\w/:]+)=(\S*)/g)].map((m) => [m[1], m[2]])));
}

async function queueEmpty(c: SlurmCluster): Promise<boolean> {
  const r = await c.run('squeue', ['-h', '-r']);
  return r.code === 0 && r.stdout.trim() === '';
}

test('job array with throttle, afterany dependency, task states and requeue on a one-node Slurm cluster', { timeout: 180_000 }, async (t) => {
  cluster = await slurmClusterIfAvailable(t);
  if (!cluster) return;
  const c = cluster;
  t.diagnostic(`slurm ${c.version}: node idle after ${c.startupMs} ms`);
  const details = async (): Promise<string> => `${(await c.run('squeue', ['-r', '-t', 'all'])).stdout}\n${c.logTail()}`;

  await t.test('array 0-3%2 then an afterany aggregation job', async () => {
    const t0 = Date.now();
    const out = path.join(c.dir, 'array');
    fs.mkdirSync(out);
    // Start and end times (ns) let the test check the throttle: never more than 2 tasks at once.
    const task = writeScript(
      path.join(out, 'task.sh'),
      [
        'start=$(date +%s.%N)',
        'sleep 1',
        'printf "%s %s %s %s %s\\n" "$SLURM_ARRAY_TASK_ID" "$SLURM_ARRAY_JOB_ID" "$SLURM_JOB_ID" "$start" "$(date +%s.%N)" > "$IBRAR_OUT/task-$SLURM_ARRAY_TASK_ID.tmp"',
        // Renamed so the aggregation job can never see a half-written file.
        'mv "$IBRAR_OUT/task-$SLURM_ARRAY_TASK_ID.tmp" "$IBRAR_OUT/task-$SLURM_ARRAY_TASK_ID"',
      ].join('\n'),
    );
    const agg = writeScript(
      path.join(out, 'aggregate.sh'),
      [
        '{',
        '  echo "start $(date +%s.%N)"',
        '  for f in "$IBRAR_OUT"/task-*; do echo "$(basename "$f") $(cat "$f")"; done',
        '} > "$IBRAR_OUT/marker.tmp"',
        'mv "$IBRAR_OUT/marker.tmp" "$IBRAR_OUT/marker"',
      ].join('\n'),
    );
    const common = [`--export=ALL,IBRAR_OUT=${out}`, `--chdir=${out}`];
    const arrayId = jobId(
      await c.runOk('sbatch', ['--parsable', '--array=0-3%2', '--job-name=cells', '-o', path.join(out, 'slurm-%A_%a.out'), ...common, task]),
    );
    const aggId = jobId(
      await c.runOk('sbatch', [
        '--parsable',
        `--dependency=afterany:${arrayId}`,
        '--job-name=aggregate',
        '-o',
        path.join(out, 'slurm-%j.out'),
        ...common,
        agg,
      ]),
    );

    const finished = async (): Promise<boolean> => fs.existsSync(path.join(out, 'marker')) && (await queueEmpty(c));
    await waitUntil(finished, 60_000, 'array and aggregation job to finish', details);
    t.diagnostic(`4 tasks (1 s each, 2 at a time) + aggregation: ${Date.now() - t0} ms from submission to an empty queue`);

    const tasks = [0, 1, 2, 3].map((k) => {
      const f = path.join(out, `task-${k}`);
      assert.ok(fs.existsSync(f), `task ${k} wrote no file; ${fs.readdirSync(out).join(' ')}`);
      const [id, arr, job, start, end] = fs.readFileSync(f, 'utf8').trim().split(' ');
      assert.equal(id, String(k));
      assert.equal(arr, arrayId, 'SLURM_ARRAY_JOB_ID is the id sbatch --parsable printed');
      return { k, job, start: Number(start), end: Number(end) };
    });
    // The most tasks running at once is reached at some task's start: count, at each start, the
    // tasks running then. (Counting every task a task overlaps is wrong: under load a slow task
    // can overlap one that ends and then the one Slurm starts in its slot, with never three at once.)
    for (const x of tasks) {
      const running = tasks.filter((y) => y.start <= x.start && x.start < y.end).length;
      assert.ok(running <= 2, `${running} tasks running when task ${x.k} started, despite %2; tasks ${JSON.stringify(tasks)}; jobcomp ${JSON.stringify(c.jobComp().filter((r) => r.ArrayJobId === arrayId))}`);
    }
    assert.ok(tasks.some((x) => tasks.some((y) => y.end <= x.start)), `some task waited for another to end (%2 with 4 tasks); tasks ${JSON.stringify(tasks)}`);

    const marker = fs.readFileSync(path.join(out, 'marker'), 'utf8').trim().split('\n');
    const aggStart = Number(marker[0].split(' ')[1]);
    assert.deepEqual(marker.slice(1).map((l) => l.split(' ')[0]), ['task-0', 'task-1', 'task-2', 'task-3'], 'the aggregation job saw every task file');
    assert.ok(aggStart >= Math.max(...tasks.map((x) => x.end)), 'the afterany job started only after every task had ended');

    // State source 1: jobcomp/filetxt, one line per finished job or task; ArrayJobId/ArrayTaskId
    // identify the cell (JobId is the task's own job id).
    const comp = c.jobComp();
    const cells = comp.filter((r) => r.ArrayJobId === arrayId);
    assert.deepEqual(cells.map((r) => r.ArrayTaskId).sort(), ['0', '1', '2', '3'], JSON.stringify(comp));
    for (const r of cells) {
      assert.equal(r.JobState, 'COMPLETED', `task ${r.ArrayTaskId}`);
      assert.equal(r.ExitCode, '0:0');
      assert.equal(r.JobId, tasks[Number(r.ArrayTaskId)].job, 'JobId in jobcomp is SLURM_JOB_ID of the task');
    }
    const aggRec = comp.find((r) => r.JobId === aggId);
    assert.ok(aggRec, `no jobcomp line for the aggregation job ${aggId}`);
    assert.equal(aggRec.JobState, 'COMPLETED');
    // Slurm's times have whole-second resolution, so equality is allowed.
    assert.ok(aggRec.StartTime >= cells.map((r) => r.EndTime).sort().pop()!, 'jobcomp: dependency started after the array ended');

    // State source 2: squeue -t all, while slurmctld still remembers the finished jobs (MinJobAge).
    const sq = (await c.runOk('squeue', ['-h', '-r', '-t', 'all', '-j', arrayId, '-o', '%K %T'])).trim().split('\n').sort();
    assert.deepEqual(sq, ['0 COMPLETED', '1 COMPLETED', '2 COMPLETED', '3 COMPLETED']);

    // State source 3: scontrol show job, same lifetime, also shows the throttle and exit codes.
    const sc = await scontrolJobs(c, arrayId);
    assert.equal(sc.length, 4);
    for (const r of sc) {
      assert.equal(r.JobState, 'COMPLETED');
      assert.equal(r.ExitCode, '0:0');
      assert.equal(r.ArrayTaskThrottle, '2');
    }

    // sacct needs slurmdbd; without it, plain sacct refuses...
    const plain = await c.run('sacct', ['-j', arrayId]);
    assert.notEqual(plain.code, 0);
    assert.match(plain.stderr, /accounting storage is disabled/i);
    // ...and `sacct -c` (reading the jobcomp file) knows raw job ids and states but not the array
    // fields: it prints "Unknown type ArrayJobId" on stderr and shows no <array>_<task> ids.
    // Without -S sacct starts at midnight, which a run across midnight would fall on.
    const completion = await c.runOk('sacct', ['-c', '-S', 'now-1days', '-n', '-P', '-o', 'JobID,State']);
    const byJob = new Map(completion.trim().split('\n').map((l) => l.split('|') as [string, string]));
    for (const x of tasks) assert.equal(byJob.get(x.job), 'COMPLETED', `sacct -c row of task ${x.k} (job ${x.job})`);
    assert.ok(!completion.includes(`${arrayId}_`), 'sacct -c shows no array-style ids in 22.05');

    assert.ok(await queueEmpty(c), 'squeue is empty at the end');
  });

  await t.test('a requeued task runs again with SLURM_RESTART_COUNT (running and finished tasks)', async () => {
    const t0 = Date.now();
    const out = path.join(c.dir, 'requeue');
    fs.mkdirSync(out);
    // Task 1 stands for a long cell: on its first run it waits to be requeued (bounded, so a
    // failed test leaves nothing long-lived); task 0 finishes at once and is requeued afterwards.
    const task = writeScript(
      path.join(out, 'task.sh'),
      [
        'echo "restart=${SLURM_RESTART_COUNT:-0}" >> "$IBRAR_OUT/runs-$SLURM_ARRAY_TASK_ID"',
        'if [ "$SLURM_ARRAY_TASK_ID" = 1 ] && [ -z "${SLURM_RESTART_COUNT:-}" ]; then sleep 60; fi',
      ].join('\n'),
    );
    const arrayId = jobId(
      await c.runOk('sbatch', ['--parsable', '--array=0-1', '-o', path.join(out, 'slurm-%A_%a.out'), `--export=ALL,IBRAR_OUT=${out}`, `--chdir=${out}`, task]),
    );
    const runs = (k: number): string[] => {
      try {
        return fs.readFileSync(path.join(out, `runs-${k}`), 'utf8').trim().split('\n');
      } catch {
        return [];
      }
    };
    await waitUntil(async () => {
      const st = (await c.runOk('squeue', ['-h', '-r', '-t', 'all', '-j', arrayId, '-o', '%K %T'])).trim().split('\n').sort();
      return runs(1).length === 1 && st.join(',') === '0 COMPLETED,1 RUNNING';
    }, 30_000, 'task 0 done and task 1 running', details);

    await c.runOk('scontrol', ['requeue', `${arrayId}_1`]);
    await c.runOk('scontrol', ['requeue', `${arrayId}_0`]);
    await waitUntil(async () => runs(0).length === 2 && runs(1).length === 2 && (await queueEmpty(c)), 60_000, 'both requeued tasks to run again', details);
    t.diagnostic(`requeue: ${Date.now() - t0} ms from submission to an empty queue (a requeued job is held for cred_expire + 1 s)`);

    assert.deepEqual(runs(0), ['restart=0', 'restart=1']);
    assert.deepEqual(runs(1), ['restart=0', 'restart=1']);
    for (const r of await scontrolJobs(c, arrayId)) {
      assert.equal(r.JobState, 'COMPLETED', `task ${r.ArrayTaskId}`);
      assert.equal(r.Restarts, '1', `task ${r.ArrayTaskId}`);
    }
    // jobcomp logs the requeue itself as a line with JobState=PENDING, then the rerun's final
    // state: the last line of a task is its current state.
    const lines = c.jobComp().filter((r) => r.ArrayJobId === arrayId);
    for (const k of ['0', '1']) {
      const mine = lines.filter((r) => r.ArrayTaskId === k).map((r) => r.JobState);
      assert.equal(mine.at(-1), 'COMPLETED', `task ${k}: ${mine.join(' ')}`);
      assert.ok(mine.includes('PENDING'), `task ${k}: ${mine.join(' ')}`);
    }
  });
});
