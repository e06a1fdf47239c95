#!/usr/bin/env node
'use strict';
// Splices the generated tables into docs/results.md (called by scripts/reproduce-cpu.sh):
//   <!-- table:NAME -->…<!-- /table:NAME -->  ← the table of docs/results/NAME/report.md
//   <!-- diagnostics:PREFIX -->…<!-- /diagnostics:PREFIX --> ← one row per diagnosed run whose
//      experiment name starts with PREFIX: each check's status and the numbers behind it
//   <!-- probe:NAME -->…<!-- /probe:NAME --> ← the newest probe.md of experiment NAME
//   <!-- computetime -->…<!-- /computetime --> ← the computation recorded in the run files
//   <!-- comparison -->…<!-- /comparison --> ← the paper's no-AT VGG16 numbers beside ours (the
//      rows of docs/results/part1 and part2 evaluated on the most test examples)
//   <!-- comparison-at -->…<!-- /comparison-at --> ← the same for PGD-AT ± IB-RAR (Table 1)
// The prose around the markers is written by hand from these numbers.
// usage: node scripts/results-tables.js docs/results.md docs/results RUNS_DIR
const fs = require('fs');
const path = require('path');

const [doc, tablesDir, runsDir] = process.argv.slice(2);
if (!doc || !tablesDir || !runsDir) {
  console.error('usage: results-tables.js DOC TABLES_DIR RUNS_DIR');
  process.exit(2);
}

/** Replaces what stands between `<!-- TAG -->` and `<!-- /TAG -->` (empty or not) with BODY on lines of its own. */
function replaceBlock(text, tag, body) {
  const open = `<!-- ${tag} -->`;
  const close = `<!-- /${tag} -->`;
  const i = text.indexOf(open);
  const j = i < 0 ? -1 : text.indexOf(close, i + open.length);
  if (j < 0) return text;
  return `${text.slice(0, i + open.length)}\n${body.trim()}\n${text.slice(j)}`;
}

/** The table part of a report.md: its setup lines, the table and its footnotes (not the run list). */
function reportTable(name) {
  const file = path.join(tablesDir, name, 'report.md');
  if (!fs.existsSync(file)) return `*(not generated yet: ${file})*`;
  const md = fs.readFileSync(file, 'utf8');
  const body = md.split('\n## Runs')[0].split('\n').slice(1).join('\n'); // drop the title
  return body.replace(/\]\(\.\.\//g, `](${path.relative(path.dirname(doc), tablesDir)}/`);
}

function findDiagnostics(prefix) {
  const out = [];
  for (const exp of fs.existsSync(runsDir) ? fs.readdirSync(runsDir).sort() : []) {
    if (!exp.startsWith(prefix)) continue;
    for (const stamp of fs.readdirSync(path.join(runsDir, exp)).sort()) {
      const evalDir = path.join(runsDir, exp, stamp, 'eval');
      if (!fs.existsSync(evalDir)) continue;
      const files = fs.readdirSync(evalDir).filter((f) => f.endsWith('-diagnostics.json')).sort();
      if (!files.length) continue;
      const file = path.join(evalDir, files[files.length - 1]);
      out.push({ exp, report: JSON.parse(fs.readFileSync(file, 'utf8')), md: file.replace(/\.json$/, '.md') });
    }
  }
  return out;
}

const pct = (v) => (typeof v === 'number' ? `${(100 * v).toFixed(1)}` : '–');
const SHORT = {
  'iterative-vs-single-step': 'iterative',
  convergence: 'convergence',
  'eps-sweep': 'ε sweep',
  adaptive: 'adaptive',
  'black-box-vs-white-box': 'black box',
  transfer: 'transfer',
  'gradient-health': 'gradients',
};

function diagnosticsTable(prefix) {
  const rows = findDiagnostics(prefix);
  if (!rows.length) return '*(no diagnostics yet)*';
  const ids = Object.keys(SHORT);
  const lines = [
    `| run | ${ids.map((i) => SHORT[i]).join(' | ')} | converged PGD | PGD at 64/255 | unbounded | white box + Square | transfer | zero-grad | verdict |`,
    `|---|${ids.map(() => '---').join('|')}|---:|---:|---:|---:|---:|---:|---|`,
  ];
  // Each run's own diagnostics page, copied beside the tables (the run folders are not in the repository).
  const pages = path.join(tablesDir, 'diagnostics');
  fs.mkdirSync(pages, { recursive: true });
  for (const { exp, report, md } of rows) {
    let name = exp;
    if (fs.existsSync(md)) {
      // Paths of this machine's run folders, written relative to the repository.
      const text = fs.readFileSync(md, 'utf8').split(path.resolve(runsDir)).join(path.relative(process.cwd(), path.resolve(runsDir)) || '.');
      fs.writeFileSync(path.join(pages, `${exp}.md`), text);
      name = `[${exp}](${path.relative(path.dirname(doc), pages)}/${exp}.md)`;
    }
    const by = Object.fromEntries(report.checks.map((c) => [c.id, c]));
    const status = (id) => (by[id] ? (by[id].status === 'warn' ? '**warn**' : by[id].status) : '–');
    const num = (id, key) => by[id]?.numbers?.[key];
    const sweep = num('eps-sweep', 'curve');
    const at64 = Array.isArray(sweep) ? sweep.find((c) => Math.abs(c.eps - 64 / 255) < 1e-9)?.acc : undefined;
    lines.push(
      `| ${name} | ${ids.map(status).join(' | ')} | ${pct(num('convergence', 'converged_acc'))} | ${pct(at64)} | ${pct(num('eps-sweep', 'unbounded_acc'))} | ` +
        `${pct(num('black-box-vs-white-box', 'white_box_then_square_acc'))} | ${pct(num('transfer', 'transfer_acc'))} | ${num('gradient-health', 'zero_gradient') ?? '–'} | ${report.verdict} |`,
    );
  }
  lines.push('', `Accuracies in % on the first ${rows[0].report.n} test examples at ε = ${rows[0].report.eps_str}; each run's name links to its diagnostics page (every check's numbers and seconds).`);
  return lines.join('\n');
}

/** Seconds of computation recorded in the run files: training epochs, evaluations, diagnostics. */
function computeTime() {
  let train = 0;
  let evals = 0;
  let diag = 0;
  const walk = (dir, depth) => {
    if (depth > 4 || !fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p, depth + 1);
      else if (e.name === 'metrics.jsonl') {
        for (const line of fs.readFileSync(p, 'utf8').split('\n')) if (line.trim()) train += JSON.parse(line).seconds || 0;
      } else if (path.basename(dir) === 'eval' && e.name.endsWith('-diagnostics.json')) diag += JSON.parse(fs.readFileSync(p, 'utf8')).seconds || 0;
      else if (path.basename(dir) === 'eval' && e.name.endsWith('.json') && !e.name.startsWith('.')) {
        for (const a of JSON.parse(fs.readFileSync(p, 'utf8')).attacks || []) evals += a.seconds || 0;
      }
    }
  };
  walk(runsDir, 0);
  const h = (v) => `${(v / 3600).toFixed(1)} h`;
  return `${h(train + evals + diag)} of computation recorded in the run files (training ${h(train)}, attacks ${h(evals)}, diagnostics ${h(diag)}), each process on one native thread`;
}

/** The newest probe table of experiment NAME (its probe.md, without the title). */
function probeTable(name) {
  const dir = path.join(runsDir, `${name}-probe`);
  const stamps = fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'probe.md'))).sort() : [];
  if (!stamps.length) return '*(not run yet)*';
  return fs.readFileSync(path.join(dir, stamps[stamps.length - 1], 'probe.md'), 'utf8').split('\n').slice(1).join('\n');
}

// The paper's VGG16 / CIFAR-10 numbers without AT (Natural, PGD-10, FGSM; mean of 3 runs, full
// width, 60 epochs, the whole training set): Table 4 rows (1), (2) and (6); the all-layers row is
// Table 3's (which has no FGSM column).
const PAPER = [
  { ours: 'ce', what: 'CE (Table 4, row 1)', natural: 89.99, pgd: 0.1, fgsm: 11.8 },
  { ours: 'ibrar', what: 'IB-RAR: IB terms on block5/fc1/fc2 + mask (Table 4, row 6)', natural: 91.5, pgd: 35.86, fgsm: 55.92 },
  { ours: 'ibrar-all', what: 'IB terms on all layers + mask (Table 3)', natural: 91.96, pgd: 25.61, fgsm: null },
  { ours: 'ibrar-nomask', what: 'IB terms without the mask (Table 4, row 2)', natural: 92.03, pgd: 12.39, fgsm: 43.49 },
];

/** Our row of a report for experiment group NAME: the one that measured column COL on the most examples. */
function ourRow(table, name, col = 'pgd') {
  const file = path.join(tablesDir, table, 'report.json');
  if (!fs.existsSync(file)) return null;
  const rows = JSON.parse(fs.readFileSync(file, 'utf8')).rows.filter((r) => r.key.split('|')[0] === name && r.cells[col]);
  return rows.sort((a, b) => b.n - a.n)[0] ?? null;
}

/** Column COL of a report row in %: mean ± std over the seeds where there are several. */
function cell(row, col) {
  const c = row?.cells?.[col];
  if (!c) return '–';
  return c.n > 1 ? `${(100 * c.mean).toFixed(2)} ± ${(100 * c.std).toFixed(2)}` : (100 * c.mean).toFixed(2);
}

function comparisonTable() {
  const num = (v) => (v === null ? '–' : v.toFixed(2));
  const lines = [
    '| setting | paper: natural | PGD-10 | FGSM | part 1: natural | PGD-10 | FGSM | seeds | part 2: natural | PGD-10 | FGSM |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of PAPER) {
    const r1 = ourRow('part1', `ref-${p.ours}`);
    const r2 = ourRow('part2', `full-${p.ours}`);
    lines.push(
      `| ${p.what} | ${num(p.natural)} | ${num(p.pgd)} | ${num(p.fgsm)} | ${cell(r1, 'natural')} | ${cell(r1, 'pgd')} | ${cell(r1, 'fgsm')} | ${r1 ? r1.seeds.length : '–'} | ` +
        `${cell(r2, 'natural')} | ${cell(r2, 'pgd')} | ${cell(r2, 'fgsm')} |`,
    );
  }
  lines.push(
    '',
    'Accuracies in % at ε = 0.03 (PGD-10 with step 2.3·ε/10 and a random start, as the paper). Paper: VGG16 at full width, 60 epochs on all 50,000 training images. ' +
      'Part 1: width 0.25, 10 epochs on 10,000 images, tested on 1,000 (mean ± std over the seeds). Part 2: width 0.25, 10 epochs on 50,000 images, tested on 10,000, one seed.',
  );
  return lines.join('\n');
}

// The paper's VGG16 / CIFAR-10 numbers with PGD-AT (Table 1: Natural, PGD, CW, FGSM; full width,
// 60 epochs, the whole training set) beside part 1's runs of the same two recipes.
const PAPER_AT = [
  { ours: 'pgd-at', what: 'PGD-AT (Table 1, "PGD")', natural: 75.02, pgd: 42.45, cw: 37.8, fgsm: 47.32 },
  { ours: 'pgd-at-ibrar', what: 'PGD-AT + IB-RAR (Table 1, "PGD (IB-RAR)")', natural: 76.22, pgd: 45.09, cw: 41.83, fgsm: 50.53 },
];

/** Column COL of experiment NAME in part 1, from the row that measured it on the most examples. */
function part1Cell(name, col) {
  const row = ourRow('part1', name, col);
  if (!row) return '–';
  const seeds = row.cells[col].n;
  return `${cell(row, col)} (n ${row.n}${seeds > 1 ? `, ${seeds} seeds` : ''})`;
}

function comparisonAtTable() {
  const lines = [
    '| setting | paper: natural | PGD-10 | CW | FGSM | ours: natural | PGD-10 | CW | FGSM | APGD-CE | AutoAttack |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const p of PAPER_AT) {
    const ours = ['natural', 'pgd', 'cw', 'fgsm', 'apgd-ce', 'autoattack'].map((c) => part1Cell(`ref-${p.ours}`, c));
    lines.push(`| ${p.what} | ${p.natural.toFixed(2)} | ${p.pgd.toFixed(2)} | ${p.cw.toFixed(2)} | ${p.fgsm.toFixed(2)} | ${ours.join(' | ')} |`);
  }
  lines.push(
    '',
    'Accuracies in % at ε = 0.03. Paper: VGG16 at full width, 60 epochs of the authors\' AT recipe on all 50,000 training images. ' +
      'Ours: width 0.25, 10 epochs of the short PGD-AT schedule on 10,000 images, each attack on the first n test images (mean ± std where more than one seed was evaluated).',
  );
  return lines.join('\n');
}

let text = fs.readFileSync(doc, 'utf8');
text = replaceBlock(text, 'comparison', comparisonTable());
text = replaceBlock(text, 'comparison-at', comparisonAtTable());
for (const m of text.matchAll(/<!-- probe:([a-z0-9-]+) -->/g)) text = replaceBlock(text, `probe:${m[1]}`, probeTable(m[1]));
text = replaceBlock(text, 'computetime', computeTime());
for (const m of text.matchAll(/<!-- table:([a-z0-9-]+) -->/g)) text = replaceBlock(text, `table:${m[1]}`, reportTable(m[1]));
for (const m of text.matchAll(/<!-- diagnostics:([a-z0-9-]+) -->/g)) text = replaceBlock(text, `diagnostics:${m[1]}`, diagnosticsTable(m[1]));
fs.writeFileSync(doc + '.tmp', text);
fs.renameSync(doc + '.tmp', doc);
console.log(`updated ${doc}`);
