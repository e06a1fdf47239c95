// The diagnostics job (`ibrar eval --diagnose`): gradient-masking checks on the first n test
// examples of an opened run, after its evaluation. Writes eval/<report>-diagnostics.json and
// .md, links them from the evaluation report, and keeps the finished checks in a state file so
// an interrupted diagnosis continues with the next check.
import { makeDirs } from '../engine/safe-read';
import * as fs from 'fs';
import * as path from 'path';
import { createHash } from 'crypto';
import { testBatches, sliceSplit, type Batch } from '../data';
import { yieldPointFor, AttackInterrupted } from '../attacks/interrupt';
import { makeAdaptiveLoss } from '../ib/hooks';
import { constantMaskHook } from '../ib/hooks';
import { runDiagnostics, CHECKS_REVISION, type CheckOutcome } from '../diagnostics';
import { writeFileAtomic, writeJsonAtomic } from '../runs/atomic';
import { readEvalReport, type EvalReport } from '../runs/eval-report';
import { DIAGNOSTICS_FORMAT, readDiagnoseState, readDiagnosticsReport, writeDiagnoseState, type DiagnosticsReport } from '../runs/diagnostics-file';
import { runLayout } from '../runs/run-dir';
import { diagnosticsMarkdown } from '../report/diagnostics-tables';
import { evalMarkdown, formatEps } from '../report/eval-tables';
import { UserError } from '../errors';
import { openRun, type OpenedRun } from './open-run';
import { ensureSurrogate, surrogateMismatch } from './surrogate';
import type { TrainProgress } from './train';

export interface DiagnoseRequest {
  eps: number;
  /** Test examples checked (the first n of the test split). */
  n: number;
  batchSize: number;
  seed: number;
  /** Only these checks (ids), for tests and quick looks; default all. */
  checks?: string[];
}

export interface DiagnoseProgress {
  onStart?(info: { n: number; eps: number; resumedChecks: number; surrogate: string | null }): void;
  onCheck?(c: CheckOutcome): void;
  onDone?(report: DiagnosticsReport, files: string[]): void;
  onInterrupted?(info: { done: number }): void;
}

export interface DiagnoseOutcome {
  report: DiagnosticsReport | null;
  files: string[];
  interrupted: boolean;
}

/**
 * Whether an evaluation calls for the diagnostics by default: a model trained without
 * adversarial examples that keeps more than 5 % accuracy under PGD is what gradient masking
 * produces (robustness without adversarial training is the claim to check).
 */
export function diagnosisIndicated(cfg: OpenedRun['cfg'], report: EvalReport): boolean {
  const adversarialTraining = ['pgd-at', 'trades', 'mart'].includes(cfg.train.method) || (cfg.train.method === 'hbar' && cfg.train.hbar?.base !== 'ce');
  const pgd = report.attacks.find((a) => a.attack === 'pgd');
  return !adversarialTraining && pgd !== undefined && pgd.robust_acc > 0.05;
}

export async function diagnose(
  run: OpenedRun,
  req: DiagnoseRequest,
  opts: { surrogate?: { dir: string; run: OpenedRun } | null; evalReportFile?: string | null; progress?: DiagnoseProgress; shouldStop?: () => boolean } = {},
): Promise<DiagnoseOutcome> {
  const { cfg, dataset, model } = run;
  const layout = run.layout ?? runLayout('.');
  const ckpt = run.checkpoint;
  if (!ckpt) throw new Error('diagnose: load a checkpoint first');
  const n = Math.min(req.n, dataset.test.n);
  const batches: Batch[] = [...testBatches(sliceSplit(dataset.test, 0, n), req.batchSize)];
  const surrogateDir = opts.surrogate?.dir ?? null;
  const key = createHash('sha256')
    .update(JSON.stringify({ revision: CHECKS_REVISION, ckpt: ckpt.sidecar.files.weights.sha256, n, eps: req.eps, seed: req.seed, batchSize: req.batchSize, surrogate: surrogateDir, checks: req.checks ?? null }))
    .digest('hex')
    .slice(0, 16);
  makeDirs(layout.evalDir);
  const evalBase = opts.evalReportFile ? path.basename(opts.evalReportFile, '.json') : null;
  // The same diagnosis of the same evaluation again: its report as it is.
  if (evalBase) {
    const earlier = readDiagnosticsReport(path.join(layout.evalDir, `${evalBase}-diagnostics.json`));
    if (earlier && earlier.key === key) {
      const files = [`${evalBase}-diagnostics.json`, `${evalBase}-diagnostics.md`].map((f) => path.join(layout.evalDir, f));
      opts.progress?.onDone?.(earlier, files);
      return { report: earlier, files, interrupted: false };
    }
  }
  const statePath = path.join(layout.evalDir, `.diagnose-${key}.json`);
  const done = readDiagnoseState(statePath, key, n);
  opts.progress?.onStart?.({ n, eps: req.eps, resumedChecks: done.length, surrogate: surrogateDir });
  const finished = [...done];
  const t0 = process.hrtime.bigint();
  let summary;
  try {
    summary = await runDiagnostics(
      {
        target: run.target(),
        batches,
        eps: req.eps,
        seed: req.seed,
        yieldPoint: yieldPointFor(opts.shouldStop ?? (() => false)),
        adaptiveLoss: cfg.ib.enabled ? makeAdaptiveLoss(cfg, model) : undefined,
        surrogate: opts.surrogate?.run.target(),
        model: { forward: (x, o) => model.forward(x, o), tapNames: model.tapNames, channelMask: run.evalMask ? constantMaskHook(run.evalMask) : undefined },
      },
      {
        done,
        only: req.checks,
        onCheck: (c) => {
          finished.push(c);
          writeDiagnoseState(statePath, { key, n, done: finished });
          opts.progress?.onCheck?.(c);
        },
      },
    );
  } catch (err) {
    if (err instanceof AttackInterrupted) {
      opts.progress?.onInterrupted?.({ done: finished.length });
      return { report: null, files: [], interrupted: true };
    }
    throw err;
  }
  const report: DiagnosticsReport = {
    format: DIAGNOSTICS_FORMAT,
    key,
    runDir: layout.dir,
    evalReport: evalBase ? `${evalBase}.json` : null,
    checkpoint: { tag: ckpt.tag, epoch: ckpt.sidecar.epoch },
    method: cfg.train.method,
    ib: cfg.ib.enabled,
    n,
    eps: req.eps,
    eps_str: formatEps(req.eps),
    seed: req.seed,
    surrogate: surrogateDir,
    clean_acc: summary.clean_acc,
    worst_case_acc: summary.worst_case_acc,
    checks: summary.checks.map(({ robust: _r, ...c }) => c),
    verdict: summary.verdict,
    warned: summary.warned,
    line: summary.line,
    seconds: summary.checks.reduce((s, c) => s + c.seconds, 0) || Number(process.hrtime.bigint() - t0) / 1e9,
    createdAt: new Date().toISOString(),
  };
  const base = path.join(layout.evalDir, `${evalBase ?? report.createdAt.replace(/[-:]/g, '').replace('T', '-').slice(0, 15)}-diagnostics`);
  writeJsonAtomic(`${base}.json`, report);
  writeFileAtomic(`${base}.md`, diagnosticsMarkdown(report));
  const files = [`${base}.json`, `${base}.md`];
  // Link from the evaluation report, whose Markdown then carries the verdict too.
  if (opts.evalReportFile) {
    const ev = readEvalReport(opts.evalReportFile);
    if (ev) {
      const linked: EvalReport = { ...ev, diagnostics: path.basename(`${base}.json`) };
      writeJsonAtomic(opts.evalReportFile, linked);
      writeFileAtomic(opts.evalReportFile.replace(/\.json$/, '.md'), evalMarkdown(linked) + '\n' + diagnosticsMarkdown(report, 2));
    }
  }
  fs.rmSync(statePath, { force: true });
  opts.progress?.onDone?.(report, files);
  return { report, files, interrupted: false };
}

/**
 * The transfer check's surrogate: `none` (skip the check), a run directory (same architecture
 * and dataset), or `auto` (the run's recipe without the defence, trained on demand and reused).
 */
export async function resolveSurrogate(
  run: OpenedRun,
  choice: string,
  opts: { open?: OpenedRun | null; progress?: TrainProgress; shouldStop?: () => boolean } = {},
): Promise<{ dir: string; run: OpenedRun; owned: boolean } | null | 'interrupted'> {
  if (choice === 'none') return null;
  if (choice !== 'auto') {
    const s = opts.open ?? (await openRun({ kind: 'existing', runDir: choice, checkpoint: 'last' }));
    const problem = surrogateMismatch(s, run, true);
    if (problem) {
      if (!opts.open) s.dispose();
      throw new UserError(`this surrogate does not fit: ${problem}`, choice, '--surrogate');
    }
    return { dir: choice, run: s, owned: !opts.open };
  }
  const dir = await ensureSurrogate(run, { progress: opts.progress, shouldStop: opts.shouldStop });
  if (!dir) return 'interrupted';
  return { dir, run: await openRun({ kind: 'existing', runDir: dir, checkpoint: 'last' }), owned: true };
}
