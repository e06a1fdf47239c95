// SIGKILL at any moment, including in the middle of writing a checkpoint: one run is killed
// 20 times (each resume is killed again), then resumed to the end. After every kill the last
// committed checkpoint must verify (sizes + SHA-256), the next `--resume` must start, and the
// end result must equal an uninterrupted run's exactly: metrics rows, final weights (same
// SHA-256), best checkpoint, and the evaluation that `train` runs at the end.
//
// Two kinds of kill points, alternating, both fixed by the code rather than the clock (so the
// test does the same under any load): (a) at the N-th file-changing call under the runs folder
// (fault-preload.ts; a write that is hit is torn in half first), which reaches every on-disk
// state a kill can produce, mid-checkpoint included; (b) at the N-th event-loop turn ibrar
// yields (one per training step, evaluation batch and attack iteration), which lands in compute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { Rng } from '../../src/engine/rng';
import { readCheckpointFiles, readCheckpointSidecar } from '../../src/runs/checkpoint';
import { runLayout } from '../../src/runs/run-dir';
import { tempDir } from '../helpers/configs';
import { exactMetrics, runCli, runDirsOf, tinyYaml } from './cli';

const KILLS = 20;

function evalSummary(runDir: string): unknown {
  const dir = runLayout(runDir).evalDir;
  const reports = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && !f.startsWith('.'));
  assert.equal(reports.length, 1, `one evaluation report in ${dir}: ${reports.join(', ')}`);
  const r = JSON.parse(fs.readFileSync(path.join(dir, reports[0]), 'utf8'));
  return { n: r.n, clean: r.clean_acc, attacks: r.attacks.map((a: { attack: string; robust_acc: number }) => [a.attack, a.robust_acc]) };
}

/** Every committed checkpoint in the run verifies against its sidecar. */
function assertCheckpointsLoadable(runDir: string, when: string): void {
  const dir = runLayout(runDir).checkpoints;
  for (const tag of ['last', 'best']) {
    if (!fs.existsSync(path.join(dir, `${tag}.json`))) continue;
    assert.doesNotThrow(() => readCheckpointFiles(dir, tag), `${tag} checkpoint loadable ${when}`);
  }
}

test(`a run killed ${KILLS} times at random points resumes to exactly the uninterrupted result`, { timeout: 150_000 }, async () => {
  const root = tempDir('ibrar-kill-');
  const evalPart = 'eval: {attacks: [fgsm], eps: 0.1, n: 64, batchSize: 16}';
  const refRuns = path.join(root, 'ref');
  const refCfg = path.join(root, 'ref.yaml');
  fs.writeFileSync(refCfg, tinyYaml(refRuns, { train: 'checkpointEvery: 2', extra: evalPart }));
  const countFile = path.join(root, 'ops');
  const turnFile = path.join(root, 'turns');
  const ref = await runCli(['train', '--config', refCfg], { faults: true, env: { IBRAR_FAULT_DIR: refRuns, IBRAR_FAULT_COUNT_FILE: countFile, IBRAR_FAULT_TURN_FILE: turnFile } });
  assert.equal(ref.code, 0, ref.stderr);
  const totalOps = Number(fs.readFileSync(countFile, 'utf8'));
  const totalTurns = Number(fs.readFileSync(turnFile, 'utf8'));
  assert.ok(totalOps > 100, `an uninterrupted run makes ${totalOps} file-changing calls`);
  assert.ok(totalTurns > 20, `an uninterrupted run yields ${totalTurns} times`);
  const [refDir] = runDirsOf(refRuns);

  /** The finished run dir equals the uninterrupted one in everything but timings. */
  const assertSameAsReference = (runDir: string): void => {
    assert.deepEqual(exactMetrics(runDir), exactMetrics(refDir), 'metrics.jsonl rows equal the uninterrupted run');
    const csvRows = fs.readFileSync(runLayout(runDir).metricsCsv, 'utf8').trim().split('\n');
    assert.equal(csvRows.length, 4, 'metrics.csv: header + 3 epochs, no duplicate or torn rows');
    const ck = (d: string, tag: string) => readCheckpointSidecar(runLayout(d).checkpoints, tag);
    for (const tag of ['last', 'best']) {
      assert.equal(ck(runDir, tag).files.weights.sha256, ck(refDir, tag).files.weights.sha256, `${tag} weights are bit-identical`);
      assert.equal(ck(runDir, tag).epoch, ck(refDir, tag).epoch);
      // The plain-named file PyTorch users load is the committed one (repaired after a kill that
      // fell between the commit and the relink).
      const plain = fs.readFileSync(path.join(runLayout(runDir).checkpoints, `${tag}.safetensors`));
      assert.equal(createHash('sha256').update(plain).digest('hex'), ck(runDir, tag).files.weights.sha256, `${tag}.safetensors is the committed data`);
    }
    assert.deepEqual(evalSummary(runDir), evalSummary(refDir), 'the end-of-training evaluation equals the uninterrupted one');
    assertCheckpointsLoadable(runDir, 'at the end');
    const leftovers = fs.readdirSync(runLayout(runDir).checkpoints).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(leftovers, [], 'no temp files left in checkpoints/ once the run finished');
  };

  const rng = new Rng(2024);
  const log: string[] = [];
  let kills = 0;
  let chain = 0;
  let runs = '';
  let cfg = '';
  const newChain = (): void => {
    chain++;
    runs = path.join(root, `killed-${chain}`);
    cfg = path.join(root, `killed-${chain}.yaml`);
    fs.writeFileSync(cfg, tinyYaml(runs, { train: 'checkpointEvery: 2', extra: evalPart }));
  };
  // The run to continue: the newest dir whose config.yaml was written (a kill may have hit
  // before that, leaving a dir with nothing in it to resume).
  const currentRun = (): string | undefined => runDirsOf(runs).filter((d) => fs.existsSync(runLayout(d).config)).pop();
  newChain();
  while (kills < KILLS) {
    const current = currentRun();
    const args = current ? ['train', '--resume', current] : ['train', '--config', cfg];
    let how: string;
    let res;
    if (kills % 2 === 0) {
      // A small share of a run's file operations per launch, so that each launch gets a
      // little further and the kills spread over the whole run.
      const at = 1 + rng.int(Math.ceil(totalOps / 8));
      how = `fs op ${at}`;
      res = await runCli(args, { faults: true, env: { IBRAR_FAULT_DIR: runs, IBRAR_FAULT_KILL_AT: String(at) } });
    } else {
      const at = 1 + rng.int(Math.ceil(totalTurns / 4));
      how = `turn ${at}`;
      res = await runCli(args, { faults: true, env: { IBRAR_FAULT_KILL_AT_TURN: String(at) } });
    }
    const now = currentRun();
    const lastCk = now && fs.existsSync(path.join(runLayout(now).checkpoints, 'last.json')) ? readCheckpointSidecar(runLayout(now).checkpoints, 'last') : null;
    const evalState = now && fs.existsSync(runLayout(now).evalDir) ? fs.readdirSync(runLayout(now).evalDir).filter((f) => f.startsWith('.state-')).length : 0;
    log.push(
      `chain ${chain} ${args[1]} ${current ? path.basename(current) : ''}: ${how} → ${res.signal ?? res.code}; ` +
        (lastCk ? `last checkpoint: epoch ${lastCk.epoch}, step ${lastCk.step}` : 'no checkpoint yet') +
        (evalState ? ', evaluation in progress' : ''),
    );
    if (res.signal === 'SIGKILL') {
      kills++;
      for (const d of runDirsOf(runs)) assertCheckpointsLoadable(d, `after kill ${kills} (${how})`);
      continue;
    }
    // Not killed: it must have run to the end (anything else means resume failed); then start
    // another run to kill.
    assert.equal(res.code, 0, `launch failed (${how}):\n${res.stderr}\n${log.join('\n')}`);
    assertSameAsReference(currentRun()!);
    newChain();
  }
  const current = currentRun();
  const last = await runCli(current ? ['train', '--resume', current] : ['train', '--config', cfg]);
  assert.equal(last.code, 0, `final launch failed:\n${last.stderr}\n${log.join('\n')}`);
  assertSameAsReference(currentRun()!);
  console.log(`${kills} kills over ${chain} run(s); an uninterrupted run makes ${totalOps} file-changing calls and ${totalTurns} event-loop turns\n${log.join('\n')}`);
});
