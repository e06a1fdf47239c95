// Config resolution, merged once: schema defaults < YAML file < `--set key=value` flags.
// Every later function receives the resolved ExperimentConfig.
import * as fs from 'fs';
import * as YAML from 'yaml';
import type { ZodIssue } from 'zod';
import { UserError } from '../errors';
import { experimentSchema, type ExperimentConfig } from './schema';

/** YAML anchors/aliases beyond this count are refused (billion-laughs protection). */
const MAX_ALIASES = 100;
const MAX_CONFIG_BYTES = 1 << 20;

export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new UserError('expected a YAML file, found a directory or special file', file);
    if (st.size > MAX_CONFIG_BYTES) throw new UserError(`config is ${st.size} bytes; expected at most ${MAX_CONFIG_BYTES}`, file);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof UserError) throw err;
    throw new UserError(`cannot read config: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, file);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text, { maxAliasCount: MAX_ALIASES, prettyErrors: true, uniqueKeys: true });
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    throw new UserError(`invalid YAML: ${msg}`, file);
  }
  if (doc === null || doc === undefined) throw new UserError('the config is empty; expected a mapping with at least name, data and model', file);
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UserError(`expected a mapping at the top level, found ${Array.isArray(doc) ? 'a list' : typeof doc}`, file);
  }
  return doc;
}

/** Apply `a.b.c=value` overrides; the value is parsed as a YAML scalar/flow value. */
export function applyOverrides(doc: Record<string, unknown>, sets: readonly string[]): Record<string, unknown> {
  const out = structuredClone(doc);
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new UserError(`--set expects key.path=value, found '${set}'`);
    const path = set.slice(0, eq).trim().split('.');
    if (path.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) {
      throw new UserError(`--set: invalid key path '${set.slice(0, eq)}'`);
    }
    let value: unknown;
    try {
      value = YAML.parse(set.slice(eq + 1), { maxAliasCount: MAX_ALIASES });
    } catch (err) {
      throw new UserError(`--set ${set.slice(0, eq)}: cannot parse value: ${(err as Error).message.split('\n')[0]}`);
    }
    let node: Record<string, unknown> = out;
    for (const key of path.slice(0, -1)) {
      const next = node[key];
      if (next === undefined || next === null) node[key] = {};
      else if (typeof next !== 'object' || Array.isArray(next)) {
        throw new UserError(`--set ${path.join('.')}: '${key}' is not a section`);
      }
      node = node[key] as Record<string, unknown>;
    }
    node[path[path.length - 1]] = value;
  }
  return out;
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return `"${value.length > 40 ? value.slice(0, 40) + '…' : value}"`;
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
  const where = issue.path.length ? issue.path.join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const base = issue.path.length ? issue.path.join('.') + '.' : '';
    return { where: issue.keys.map((k) => base + k).join(', '), message: `unknown key${issue.keys.length > 1 ? 's' : ''}` };
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
  return { where, message: `${issue.message} (found ${found})` };
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
  let doc: Record<string, unknown>;
  try {
    doc = applyOverrides(readYamlFile(file) as Record<string, unknown>, sets);
  } catch (err) {
    // --set problems name the flag; say which config they were applied to as well.
    throw err instanceof UserError && !err.file ? new UserError(err.message, file) : err;
  }
  return validateConfig(doc, file);
}

export function configToYaml(cfg: ExperimentConfig): string {
  return YAML.stringify(cfg, { lineWidth: 0 });
}
