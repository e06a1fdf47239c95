import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson, configHash } from '../../src/runs/config-hash';

test('canonical JSON sorts keys at every level and drops undefined members', () => {
  assert.equal(canonicalJson({ c: { e: -0.5, d: true }, b: [1, 'x', null], a: 1, u: undefined }), '{"a":1,"b":[1,"x",null],"c":{"d":true,"e":-0.5}}');
  assert.equal(canonicalJson([undefined, -0]), '[null,0]');
  assert.throws(() => canonicalJson({ a: NaN }), /non-finite/);
});

test('configHash is SHA-256 of the canonical JSON (known answer) and ignores key order', () => {
  // sha256('{"a":1,"b":[1,"x",null],"c":{"d":true,"e":-0.5}}'), computed independently (Python hashlib).
  const want = '603892d74ff900ec6425c8cd10bfe052a7973dcb428f54db183a3b3e135925a2';
  assert.equal(configHash({ a: 1, b: [1, 'x', null], c: { d: true, e: -0.5 } }), want);
  assert.equal(configHash({ c: { e: -0.5, d: true }, b: [1, 'x', null], a: 1 }), want);
  assert.notEqual(configHash({ a: 1, b: [1, 'x', null], c: { d: true, e: -0.25 } }), want);
  assert.notEqual(configHash({ a: 1, b: ['x', 1, null], c: { d: true, e: -0.5 } }), want, 'array order matters');
});
