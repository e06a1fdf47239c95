// `ibrar eval --diagnose` from the command line: bad input is one line and exit 2 before any
// attack runs (a surrogate of another architecture or dataset, a run without a checkpoint); a
// real diagnosis writes its files, links them from the evaluation report, and reuses them.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { train } from '../../src/jobs/train';
import { configToYaml } from '../../src/config/load';
import { runLayout } from '../../src/runs/run-dir';
import { readEvalReport } from '../../src/runs/eval-report';
import { readDiagnosticsReport } from '../../src/runs/diagnostics-file';
import { tempDir, tinyConfig } from '../helpers/configs';
import { runCli } from '../reliability/cli';

let runA: string;
let wider: string;
let otherData: string;
let noCheckpoint: string;

before(async () => {
  runA = (await train({ cfg: tinyConfig({ train: { epochs: 1 } }) })).runDir;
  wider = (await train({ cfg: tinyConfig({ model: { width: 0.5 }, train: { epochs: 1 } }) })).runDir;
  otherData = (await train({ cfg: tinyConfig({ data: { synthetic: { height: 10, width: 10 } }, train: { epochs: 1 } }) })).runDir;
  noCheckpoint = path.join(tempDir('ibrar-nock-'), 'run');
  fs.mkdirSync(runLayout(noCheckpoint).checkpoints, { recursive: true });
  fs.writeFileSync(runLayout(noCheckpoint).config, configToYaml(tinyConfig()));
});

const evalArgs = (run: string, ...more: string[]) => ['eval', '--run', run, '--attacks', 'fgsm', '--eps', '0.1', '--n', '32', ...more];

test('a surrogate of another architecture, of another dataset, or a run without a checkpoint: one line, exit 2, no evaluation', { timeout: 120_000 }, async () => {
  const before = fs.readdirSync(runLayout(runA).evalDir).length;
  const arch = await runCli(evalArgs(runA, '--diagnose', '--surrogate', wider));
  assert.equal(arch.code, 2, arch.stderr);
  assert.match(arch.stderr, new RegExp(`^ibrar: ${wider.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: --surrogate: this surrogate does not fit: the transfer check needs the same architecture: it is a small-cnn at width 0.5, the evaluated run a small-cnn at width 0.25\n$`));
  const data = await runCli(evalArgs(runA, '--surrogate', otherData));
  assert.equal(data.code, 2, data.stderr);
  assert.match(data.stderr, /this surrogate does not fit: it was trained on synthetic \(10×10×3, 4 classes\), the evaluated run on synthetic \(8×8×3, 4 classes\)/);
  assert.equal(data.stderr.trim().split('\n').length, 1);
  const none = await runCli(evalArgs(noCheckpoint, '--diagnose'));
  assert.equal(none.code, 2, none.stderr);
  assert.match(none.stderr, /no checkpoint 'last'/);
  assert.equal(fs.readdirSync(runLayout(runA).evalDir).length, before, 'nothing was evaluated or written');
});

test('--diagnose writes the diagnostics, links them from the evaluation report, and reuses them next time', { timeout: 300_000 }, async () => {
  const args = evalArgs(runA, '--attacks', 'fgsm,pgd', '--diagnose', '--diagnose-n', '32', '--surrogate', 'none');
  // The whole diagnosis in a child: its kill timer (60 s by default) is only a guard against a
  // hung child, so it gets the test's own budget; on a loaded machine this takes minutes.
  const first = await runCli(args, { timeoutMs: 280_000 });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, /^robustness claim: (supported|suspect \([a-z-, ]+\))$/m);
  const files = fs.readdirSync(runLayout(runA).evalDir).filter((f) => f.endsWith('-diagnostics.json'));
  assert.equal(files.length, 1);
  const diag = readDiagnosticsReport(path.join(runLayout(runA).evalDir, files[0]))!;
  assert.equal(diag.n, 32);
  assert.equal(diag.checks.find((c) => c.id === 'transfer')!.status, 'skip');
  const report = readEvalReport(path.join(runLayout(runA).evalDir, diag.evalReport!))!;
  assert.equal(report.diagnostics, files[0]);
  assert.match(fs.readFileSync(path.join(runLayout(runA).evalDir, diag.evalReport!.replace('.json', '.md')), 'utf8'), /## Gradient-masking diagnostics\n\n\*\*robustness claim: /);
  const again = await runCli(args);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /already evaluated/);
  assert.equal(fs.readdirSync(runLayout(runA).evalDir).filter((f) => f.endsWith('-diagnostics.json')).length, 1, 'reused, not written again');
  assert.doesNotMatch(again.stderr, /Convergence/, 'no check ran again');
});
