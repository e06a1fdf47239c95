// A stable fingerprint of a resolved config: SHA-256 of its canonical JSON (object keys
// sorted at every level, no whitespace). Key order in the YAML, or in which order defaults
// were merged, does not change it; any value change does. Stored in checkpoints so a resume
// can tell whether the config changed since the run started.
import { createHash } from 'crypto';

/**
 * Canonical JSON: like JSON.stringify (undefined members dropped, undefined in arrays → null)
 * but with sorted keys. Non-finite numbers are rejected rather than silently becoming null.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value); // -0 → "0"
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const obj = value as Record<string, unknown>;
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
    }
    default:
      throw new Error(`canonicalJson: cannot encode a ${typeof value}`);
  }
}

/** Hex SHA-256 of the canonical JSON of `config`. */
export function configHash(config: unknown): string {
  return createHash('sha256').update(canonicalJson(config), 'utf8').digest('hex');
}
