// The probe's result in the layout of the paper's Table 3 (layer, adversarial accuracy, test
// accuracy, Δ vs CE) and its recommendation. Rule (docs/method.md §7 Rec.): a single layer is
// robust when its adversarial accuracy is at least `margin` percentage points above the
// baseline's (the candidate trained without IB terms).
import type { ExperimentConfig } from '../config/schema';
import { csvRow } from '../runs/metrics';
import type { CandidateRecord, CandidateStatus } from '../runs/probe-files';

export interface ProbeRow {
  id: string;
  kind: CandidateRecord['kind'];
  label: string;
  layers: string[];
  status: CandidateStatus;
  adv_acc: number | null;
  clean_acc: number | null;
  /** adv_acc − baseline adv_acc, in percentage points. */
  delta_adv: number | null;
  /** Single layers only: whether the rule selects it (null when undecidable). */
  robust: boolean | null;
  runDir: string | null;
}

export interface ProbeResult {
  format: 'ibrar-probe/1';
  name: string;
  probeDir: string;
  complete: boolean;
  arch: string;
  dataset: string;
  method: string;
  ib: { alpha: number; beta: number; yKernel: string; mask: boolean };
  attack: string;
  eps: number;
  attackParams: Record<string, unknown> | null;
  n: number | null;
  margin: number;
  rule: string;
  rows: ProbeRow[];
  /** Recommended robust layers, in network order. */
  recommended: string[];
  /** YAML to paste under the config (or null when no layer qualifies). */
  configYaml: string | null;
  /** The same as a command-line override. */
  setFlag: string | null;
  createdAt: string;
}

export function buildProbeResult(cfg: ExperimentConfig, probeDir: string, candidates: readonly CandidateRecord[]): ProbeResult {
  const margin = cfg.probe.margin;
  const base = candidates.find((c) => c.kind === 'ce');
  const baseAdv = base?.status === 'done' && base.adv_acc !== undefined ? base.adv_acc : null;
  const rows: ProbeRow[] = candidates.map((c) => {
    const done = c.status === 'done' && c.adv_acc !== undefined;
    const delta = done && baseAdv !== null ? 100 * (c.adv_acc! - baseAdv) : null;
    // A tiny tolerance so that "exactly margin points" counts despite float round-off.
    const robust = c.kind === 'layer' && delta !== null ? delta >= margin - 1e-9 : null;
    return {
      id: c.id,
      kind: c.kind,
      label: c.label,
      layers: c.layers,
      status: c.status,
      adv_acc: done ? c.adv_acc! : null,
      clean_acc: done ? (c.clean_acc ?? null) : null,
      delta_adv: delta,
      robust,
      runDir: c.runDir ?? null,
    };
  });
  const recommended = rows.filter((r) => r.robust === true).map((r) => r.id);
  const first = candidates.find((c) => c.status === 'done' && c.attackParams);
  const flow = `[${recommended.join(', ')}]`;
  return {
    format: 'ibrar-probe/1',
    name: cfg.name,
    probeDir,
    complete: candidates.every((c) => c.status === 'done'),
    arch: cfg.model.arch,
    dataset: cfg.data.dataset,
    method: cfg.train.method,
    ib: { alpha: cfg.ib.alpha, beta: cfg.ib.beta, yKernel: cfg.ib.yKernel, mask: cfg.ib.mask.enabled },
    attack: cfg.probe.attack,
    eps: cfg.eval.eps,
    attackParams: first?.attackParams ?? null,
    n: first?.n ?? null,
    margin,
    rule: `a layer is robust when its adversarial accuracy is at least ${margin} percentage point${margin === 1 ? '' : 's'} above the baseline trained without IB terms (probe.margin)`,
    rows,
    recommended,
    configYaml: recommended.length ? `ib:\n  layers: ${flow}\n` : null,
    setFlag: recommended.length ? `--set 'ib.layers=[${recommended.join(',')}]'` : null,
    createdAt: new Date().toISOString(),
  };
}

const pct = (v: number | null) => (v === null ? '–' : (100 * v).toFixed(2));
const signed = (v: number | null) => (v === null ? '–' : `${v >= 0 ? '+' : '−'}${Math.abs(v).toFixed(2)}`);

function attackWords(r: ProbeResult): string {
  const p = r.attackParams ?? {};
  const steps = typeof p.steps === 'number' ? `, ${p.steps} steps` : '';
  return `${r.attack.toUpperCase()} (ε = ${r.eps}${steps})`;
}

export function probeMarkdown(r: ProbeResult): string {
  const lines = [
    `# Robust-layer probe: ${r.name}`,
    '',
    `${r.arch} on ${r.dataset}, method ${r.method}. Every row is an independently trained model with the IB terms ` +
      `(α = ${r.ib.alpha}, β = ${r.ib.beta}, Y kernel ${r.ib.yKernel}${r.ib.mask ? ', channel mask on' : ''}) on the listed layers only; ` +
      `the first row has no IB terms. Adversarial accuracy under ${attackWords(r)}${r.n ? ` on ${r.n} test examples` : ''}. Layout of the paper's Table 3.`,
    '',
    `| Layer | Adv. acc. (${r.attack.toUpperCase()}) | Test acc. | Δ Adv. vs ${r.rows[0]?.label ?? 'CE'} | Robust |`,
    '|---|---:|---:|---:|:---:|',
  ];
  for (const row of r.rows) {
    const status = row.status === 'done' ? '' : ` (${row.status})`;
    const robust = row.robust === null ? '' : row.robust ? 'yes' : 'no';
    lines.push(`| ${row.label}${status} | ${pct(row.adv_acc)} | ${pct(row.clean_acc)} | ${row.kind === 'ce' ? '' : signed(row.delta_adv)} | ${robust} |`);
  }
  lines.push('', `Accuracies in %. Rule: ${r.rule}.`, '');
  if (!r.complete) lines.push('**Incomplete:** run the same `ibrar probe-layers` command again to continue.', '');
  if (r.recommended.length) {
    lines.push(`Recommended robust layers: **${r.recommended.join(', ')}**. Paste into the config:`, '', '```yaml', r.configYaml!.trimEnd(), '```', '', `or add \`${r.setFlag}\` to the command line.`);
  } else if (r.rows.some((x) => x.robust !== null)) {
    lines.push(`No single layer beats the baseline by ${r.margin} point${r.margin === 1 ? '' : 's'}; keep \`ib.layers\` as it is (or lower probe.margin).`);
  }
  return lines.join('\n') + '\n';
}

export function probeCsv(r: ProbeResult): string {
  let out = csvRow(['id', 'label', 'kind', 'layers', 'status', 'adv_acc', 'clean_acc', 'delta_adv_points', 'robust', 'run_dir']);
  for (const row of r.rows) {
    out += csvRow([row.id, row.label, row.kind, row.layers.join(' '), row.status, row.adv_acc, row.clean_acc, row.delta_adv, row.robust, row.runDir]);
  }
  return out;
}
