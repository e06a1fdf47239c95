// Reading finished runs for reports and figures: run directories (found under any folder),
// their resolved configs and their evaluation reports (eval/*.json).
import * as fs from 'fs';
import * as path from 'path';
import { loadConfig } from '../config/load';
import type { ExperimentConfig } from '../config/schema';
import { UserError } from '../errors';
import { readEvalReport, type EvalReport } from '../runs/eval-report';
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
 * (a runs root, `runs/<name>`, a probe's `candidates/`, a sweep, whose cells' runs sit at
 * `<name>-sweep/<time>/cells/<id>/<cell name>/<time>`, six levels below a runs root). In argument
 * order (sorted within a folder), duplicates removed.
 */
export function findRunDirs(paths: readonly string[], opts: { includeProbes?: boolean; maxDepth?: number } = {}): string[] {
  const maxDepth = opts.maxDepth ?? 8;
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
    // A probe's candidates are reported by the probe's own table unless asked for.
    const isProbe = !opts.includeProbes && entries.some((e) => e.name === 'probe-state.json');
    for (const e of entries) if (e.isDirectory() && !e.name.startsWith('.') && !(isProbe && e.name === 'candidates')) walk(path.join(dir, e.name), depth + 1);
  };
  for (const p of paths) {
    if (!fs.existsSync(p) || !fs.statSync(p).isDirectory()) throw new UserError('expected a run directory or a folder containing run directories', p);
    batch = [];
    walk(p, 0);
    if (batch.length === 0 && !(isRunDir(p) || fs.readdirSync(p).includes('probe-state.json'))) throw new UserError('no run directory (with config.yaml and checkpoints/) found here', p);
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
    // Not an evaluation report (diagnostics, a damaged file): skipped.
    const report = readEvalReport(file);
    if (report) out.push({ file, report });
  }
  return out.sort((a, b) => (a.report.createdAt < b.report.createdAt ? -1 : a.report.createdAt > b.report.createdAt ? 1 : a.file < b.file ? -1 : 1));
}

/** A run's evaluation reports, oldest first: all of them, or the one `choice` names (a file name in eval/ or a path). */
export function chooseEvals(runDir: string, choice?: string): EvalFile[] {
  const all = readEvalFiles(runDir);
  if (!choice) return all;
  const want = path.isAbsolute(choice) || choice.includes(path.sep) ? path.resolve(choice) : path.join(runLayout(runDir).evalDir, choice.endsWith('.json') ? choice : `${choice}.json`);
  const hit = all.find((e) => path.resolve(e.file) === want);
  if (!hit) throw new UserError(`no evaluation report ${path.basename(want)} in this run`, runDir);
  return [hit];
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
