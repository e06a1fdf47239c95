// Config resolution, merged once: schema defaults < YAML file < `--set key=value` flags.
// Every later function receives the resolved ExperimentConfig.
import * as fs from 'fs';
import * as YAML from 'yaml';
import type { ZodIssue } from 'zod';
import { UserError } from '../errors';
import { readTextBounded } from '../engine/safe-read';
import { z } from 'zod';
import { experimentObject, experimentSchema, type ExperimentConfig } from './schema';

/** YAML anchors/aliases beyond this count are refused (billion-laughs protection). */
const MAX_ALIASES = 100;
export const MAX_CONFIG_BYTES = 1 << 20;

/** Deeper than any config needs; a deeper document is refused before anything walks it. */
const MAX_DEPTH = 32;

/** How deeply `value` nests (iteratively: a hostile document must not overflow the stack). */
function depthOf(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 0]];
  while (stack.length) {
    const [v, d] = stack.pop()!;
    if (d > max) max = d;
    if (d > MAX_DEPTH) break;
    if (v !== null && typeof v === 'object') for (const c of Object.values(v as object)) stack.push([c, d + 1]);
  }
  return max;
}

/**
 * How deeply the flow collections (`[…]`, `{…}`) of a YAML text nest, from one linear scan
 * (quoted strings and comments skipped). Checked before the parser sees the text: yaml 2.x
 * composes recursively and overflows its stack on some thousands of levels (and once here
 * aborted the process with an out-of-memory in the regexp compiler, which no catch stops).
 */
function flowDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' || c === "'") {
      // Skip the quoted scalar ("\x" escapes in double quotes, '' in single quotes).
      for (i++; i < text.length && text[i] !== c; i++) if (c === '"' && text[i] === '\\') i++;
    } else if (c === '#' && (i === 0 || /\s/.test(text[i - 1]))) {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '[' || c === '{') {
      if (++depth > max) max = depth;
    } else if ((c === ']' || c === '}') && depth > 0) depth--;
  }
  return max;
}

/**
 * Parse YAML text strictly: syntax errors, duplicate keys, alias bombs, tags (`!!python/object`,
 * `!foo`, and YAML 1.1's `!!binary`, `!!set`, … too: a config holds plain values) and anything
 * the parser would only warn about are errors, never printed warnings.
 */
export function parseYamlStrict(text: string, pretty = true): unknown {
  if (flowDepth(text) > MAX_DEPTH) throw new Error(`the document nests too deeply (more than ${MAX_DEPTH} levels)`);
  const doc = YAML.parseDocument(text, { prettyErrors: pretty, uniqueKeys: true, resolveKnownTags: false, strict: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem) {
    const tag = problem.code === 'TAG_RESOLVE_FAILED' ? '; configs take plain values, without YAML tags' : '';
    throw new Error(yamlMessage(problem) + tag);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (err) {
    if (err instanceof RangeError) throw new Error(`the document nests too deeply (more than ${MAX_DEPTH} levels)`);
    throw err;
  }
  if (depthOf(value) > MAX_DEPTH) throw new Error(`the document nests too deeply (more than ${MAX_DEPTH} levels)`);
  return value;
}

export function readYamlFile(file: string): unknown {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new UserError(`cannot read config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, file);
  }
  if (st.isDirectory()) throw new UserError('expected a YAML file, found a directory', file);
  // Regular files only (never a pipe or a device), at most MAX_CONFIG_BYTES.
  const text = readTextBounded(file, { maxBytes: MAX_CONFIG_BYTES, what: 'config' });
  let doc: unknown;
  try {
    doc = parseYamlStrict(text);
  } catch (err) {
    throw new UserError(`invalid YAML: ${yamlMessage(err)}`, file);
  }
  if (doc === null || doc === undefined) throw new UserError('the config is empty; expected a mapping with at least name, data and model', file);
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UserError(`expected a mapping at the top level, found ${Array.isArray(doc) ? 'a list' : typeof doc}`, file);
  }
  return doc;
}

/** The parser's first line, without the trailing ':' that introduces its code excerpt. */
function yamlMessage(err: unknown): string {
  return (err as Error).message.split('\n')[0].replace(/:\s*$/, '');
}

/** Apply `a.b.c=value` overrides; the value is parsed as a YAML scalar/flow value. */
export function applyOverrides(doc: Record<string, unknown>, sets: readonly string[]): Record<string, unknown> {
  const out = structuredClone(doc);
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new UserError(`expected key.path=value, found '${set}'`, '--set');
    const path = set.slice(0, eq).trim().split('.');
    if (path.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) {
      throw new UserError(`invalid key path '${set.slice(0, eq)}'`, '--set');
    }
    let value: unknown;
    try {
      value = parseYamlStrict(set.slice(eq + 1), false);
    } catch (err) {
      throw new UserError(`cannot parse the value: ${yamlMessage(err)}`, `--set ${set.slice(0, eq)}`);
    }
    let node: Record<string, unknown> = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null) node[key] = {};
      else if (typeof next !== 'object' || Array.isArray(next)) {
        throw new UserError(`'${key}' is not a section`, `--set ${path.join('.')}`);
      }
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
  }
  return out;
}

/** A key path for messages: plain keys as they are, any other (a newline, a quote…) JSON-quoted. */
function keyPath(path: readonly (string | number)[]): string {
  return path.map((k) => (typeof k === 'number' || /^[A-Za-z0-9_-]+$/.test(k) ? String(k) : JSON.stringify(k))).join('.');
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  // JSON-quoted: a value with a newline or a control character stays on the message's one line.
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? value.slice(0, 40) + '…' : value);
  if (typeof value === 'object') return 'a mapping';
  return `${typeof value} ${String(value)}`;
}

function valueAt(doc: unknown, path: readonly (string | number)[]): unknown {
  let node = doc;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[key];
  }
  return node;
}

function formatIssue(issue: ZodIssue, doc: unknown): { where: string; message: string } {
  const where = issue.path.length ? keyPath(issue.path) : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const base = issue.path.length ? keyPath(issue.path) + '.' : '';
    const valid = keysAt(issue.path);
    const hints = issue.keys.map((k) => closest(k, valid)).filter((h): h is string => h !== null);
    const hint = hints.length ? `; did you mean ${hints.map((h) => `'${base}${h}'`).join(', ')}?` : valid.length ? `; valid keys here: ${valid.join(', ')}` : '';
    return { where: issue.keys.map((k) => base + keyPath([k])).join(', '), message: `unknown key${issue.keys.length > 1 ? 's' : ''}${hint}` };
  }
  const found = describe(valueAt(doc, issue.path));
  if (issue.code === 'invalid_enum_value') {
    return { where, message: `expected one of ${issue.options.map((o) => `'${String(o)}'`).join(', ')}, found ${found}` };
  }
  if (issue.code === 'invalid_union') {
    // Report the branch that got furthest (e.g. the fraction string's pattern), not "Invalid input".
    const nested = issue.unionErrors.flatMap((e) => e.issues);
    const specific = nested.find((i) => i.code !== 'invalid_type');
    const types = [...new Set(nested.filter((i) => i.code === 'invalid_type').map((i) => (i as { expected: string }).expected))];
    return { where, message: `${specific ? specific.message : `expected ${types.join(' or ')}`} (found ${found})` };
  }
  if (issue.code === 'invalid_type') {
    return { where, message: issue.received === 'undefined' ? `required ${issue.expected} is missing` : `expected ${issue.expected}, found ${found}` };
  }
  if (issue.code === 'custom' && (issue.params as { bare?: boolean } | undefined)?.bare) return { where, message: issue.message };
  return { where, message: `${issue.message} (found ${found})` };
}

/** The keys the schema accepts at a path of the config (e.g. ['train'] → epochs, lr, …). */
function keysAt(path: readonly (string | number)[]): string[] {
  let node: z.ZodTypeAny = experimentObject;
  for (const key of path) {
    while (node instanceof z.ZodEffects || node instanceof z.ZodDefault || node instanceof z.ZodOptional || node instanceof z.ZodNullable) {
      node = node instanceof z.ZodEffects ? node.innerType() : node instanceof z.ZodDefault ? node._def.innerType : node.unwrap();
    }
    if (!(node instanceof z.ZodObject)) return [];
    node = (node.shape as Record<string, z.ZodTypeAny>)[String(key)];
    if (!node) return [];
  }
  while (node instanceof z.ZodEffects || node instanceof z.ZodDefault || node instanceof z.ZodOptional || node instanceof z.ZodNullable) {
    node = node instanceof z.ZodEffects ? node.innerType() : node instanceof z.ZodDefault ? node._def.innerType : node.unwrap();
  }
  return node instanceof z.ZodObject ? Object.keys(node.shape as object) : [];
}

/** The valid key closest to a typo (edit distance ≤ 2, or one is a prefix of the other), or null. */
function closest(key: string, valid: readonly string[]): string | null {
  let best: string | null = null;
  let bestD = Infinity;
  for (const v of valid) {
    const d = editDistance(key.toLowerCase(), v.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = v;
    }
  }
  return best !== null && (bestD <= 2 || best.toLowerCase().startsWith(key.toLowerCase())) ? best : null;
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length];
}

/**
 * Key path of the first non-finite number (`.inf`, `.nan`, `1e999`) anywhere in the document.
 * No config value may be infinite or NaN; zod's `number()` alone lets ±Infinity through.
 */
export function findNonFinite(node: unknown, at: (string | number)[] = []): { path: string; value: number } | null {
  if (typeof node === 'number') return Number.isFinite(node) ? null : { path: at.join('.') || '(top level)', value: node };
  if (node === null || typeof node !== 'object') return null;
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    const hit = findNonFinite(v, [...at, Array.isArray(node) ? Number(k) : k]);
    if (hit) return hit;
  }
  return null;
}

/** Validate a raw document; errors name the file and every offending key path. */
export function validateConfig(doc: unknown, file = '<config>'): ExperimentConfig {
  const bad = findNonFinite(doc);
  if (bad) throw new UserError(`expected a finite number, found ${bad.value}`, file, bad.path);
  const res = experimentSchema.safeParse(doc);
  if (res.success) return res.data;
  const lines = res.error.issues.map((i) => formatIssue(i, doc));
  const first = lines[0];
  const more = lines.slice(1).map((l) => `\n  ${l.where}: ${l.message}`).join('');
  throw new UserError(first.message + more, file, first.where);
}

export function loadConfig(file: string, sets: readonly string[] = []): ExperimentConfig {
  const doc = applyOverrides(readYamlFile(file) as Record<string, unknown>, sets);
  try {
    return validateConfig(doc, file);
  } catch (err) {
    // A bad value that came from `--set key=…` names the flag, not the file.
    if (err instanceof UserError && err.where) {
      const set = sets.map((s) => s.slice(0, s.indexOf('=')).trim()).find((k) => err.where === k || err.where!.startsWith(k + '.'));
      if (set) throw new UserError(err.message.slice(err.message.indexOf(err.where) + err.where.length + 2), `--set ${set}`, err.where === set ? undefined : err.where);
    }
    throw err;
  }
}

/**
 * The config as saved in a run: every value, but without the sections that do not apply to it
 * (the synthetic data's generator for real data, WRN's depth and widen for other networks);
 * they come back with their defaults when it is read.
 */
export function configToYaml(cfg: ExperimentConfig): string {
  const { synthetic, ...data } = cfg.data;
  const { depth, widen, ...model } = cfg.model;
  const out = {
    ...cfg,
    data: cfg.data.dataset === 'synthetic' ? { ...data, synthetic } : data,
    model: cfg.model.arch === 'wrn' ? { ...model, depth, widen } : model,
  };
  return YAML.stringify(out, { lineWidth: 0 });
}
