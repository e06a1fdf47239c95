// Reading finished runs for reports and figures: run directories (found under any folder),
// their resolved configs and their evaluation reports (eval/*.json).
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import type { EvalReport } from '../runs/eval-report';
import { runLayout } from '../runs/run-dir';

export interface EvalFile {
  file: string;
  report: EvalReport;
}

export function isRunDir(dir: string): boolean {
  return fs.existsSync(runLayout(dir).config) && fs.existsSync(runLayout(dir).checkpoints);
}

/**
 * Run directories named by `paths`: a run dir itself, or any folder searched recursively
 * (a runs root, `runs/<name>`, a probe's `candidates/`). In argument order (sorted within a
 * folder), duplicates removed.
 */
export function findRunDirs(paths: readonly string[], maxDepth = 6): string[] {
  const found = new Set<string>();
  let batch: string[] = [];
  const walk = (dir: string, depth: number): void => {
    if (isRunDir(dir)) {
      batch.push(path.resolve(dir));
      return;
    }
    if (depth >= maxDepth) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.')) walk(path.join(dir, e.name), depth + 1);
  };
  for (const p of paths) {
    if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) throw new UserError('expected a run directory or a folder containing run directories', p);
    batch = [];
    walk(p, 0);
    if (batch.length === 0) throw new UserError('no run directory (with config.yaml and checkpoints/) found here', p);
    for (const d of batch.sort()) found.add(d);
  }
  return [...found];
}

export function readRunConfig(runDir: string): ExperimentConfig {
  return loadConfig(runLayout(runDir).config);
}

/** Every evaluation report of a run, oldest first (by creation time, then file name). */
export function readEvalFiles(runDir: string): EvalFile[] {
  const dir = runLayout(runDir).evalDir;
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const out: EvalFile[] = [];
  for (const name of names) {
    if (!name.endsWith('.json') || name.startsWith('.')) continue;
    const file = path.join(dir, name);
    try {
      const report = JSON.parse(fs.readFileSync(file, 'utf8')) as EvalReport;
      if (report && report.format === 'ibrar-eval/1' && Array.isArray(report.attacks)) out.push({ file, report });
    } catch {
      // Not an evaluation report (or a damaged one): skipped.
    }
  }
  return out.sort((a, b) => (a.report.createdAt < b.report.createdAt ? -1 : a.report.createdAt > b.report.createdAt ? 1 : a.file < b.file ? -1 : 1));
}

/** Robust accuracy of `attack` in a report, or the clean accuracy for `natural`; null when absent. */
export function metricOf(report: EvalReport, key: string): number | null {
  if (key === 'natural') return report.clean_acc;
  if (key === 'worst_case') return report.worst_case_acc;
  const a = report.attacks.find((s) => s.attack === key);
  return a ? a.robust_acc : null;
}

/**
 * The evaluation a report uses for a run: `choice` (a file name in eval/ or a path) when given;
 * otherwise, preferring reports at the run's own `eval.eps` (`preferredEps`), the newest among
 * those covering the most of `columns` (every attack counts when `columns` is empty), so that a
 * later sweep (e.g. `plot --kind steps --compute`) does not hide the full evaluation.
 */
export function chooseEval(runDir: string, columns: readonly string[], choice?: string, preferredEps?: number): EvalFile | null {
  const all = readEvalFiles(runDir);
  if (choice) {
    const want = path.isAbsolute(choice) || choice.includes(path.sep) ? path.resolve(choice) : path.join(runLayout(runDir).evalDir, choice.endsWith('.json') ? choice : `${choice}.json`);
    const hit = all.find((e) => path.resolve(e.file) === want);
    if (!hit) throw new UserError(`no evaluation report ${path.basename(want)} in this run`, runDir);
    return hit;
  }
  let best: EvalFile | null = null;
  let bestCover = -1;
  for (const e of all) {
    const epsMatch = preferredEps !== undefined && Math.abs(e.report.eps - preferredEps) < 1e-12 ? 1000 : 0;
    const cover = epsMatch + (columns.length ? columns.filter((c) => metricOf(e.report, c) !== null).length : e.report.attacks.length);
    if (cover >= bestCover) {
      best = e;
      bestCover = cover;
    }
  }
  return best;
}

/** SVG figures already in a run's figures/ folder. */
export function runFigures(runDir: string): string[] {
  const dir = runLayout(runDir).figures;
  try {
    return fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.svg'))
      .sort()
      .map((n) => path.join(dir, n));
  } catch {
    return [];
  }
}
