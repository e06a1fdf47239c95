import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { applyOverrides, loadConfig } from '../../src/config/load';
import { UserError } from '../../src/errors';
import { REPO_ROOT } from '../helpers/golden';
import { tempDir } from '../helpers/configs';

function writeYaml(text: string): string {
  const file = path.join(tempDir('ibrar-cfg-'), 'exp.yaml');
  fs.writeFileSync(file, text);
  return file;
}

const MINIMAL = 'name: t\ndata:\n  dataset: synthetic\nmodel:\n  arch: small-cnn\n';

function expectUserError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    for (const p of patterns) assert.match((err as Error).message, p);
    return true;
  });
}

test('defaults < YAML < --set, resolved in one place', () => {
  const file = writeYaml(MINIMAL + 'train:\n  epochs: 5\n');
  const cfg = loadConfig(file, ['train.lr=0.1', 'ib.layers=[conv3, fc1]', 'eval.eps=8/255']);
  assert.equal(cfg.train.epochs, 5);
  assert.equal(cfg.train.lr, 0.1);
  assert.equal(cfg.train.batchSize, 100, 'schema default');
  assert.deepEqual(cfg.ib.layers, ['conv3', 'fc1']);
  assert.ok(Math.abs(cfg.eval.eps - 8 / 255) < 1e-12);
});

test('an unknown key is an error naming the file and its key path', () => {
  const file = writeYaml(MINIMAL + 'train:\n  epochz: 5\n');
  expectUserError(() => loadConfig(file), new RegExp(file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')), /train\.epochz/, /unknown key/);
});

test('a wrong type names the key, what was expected and what was found', () => {
  const file = writeYaml(MINIMAL + 'train:\n  epochs: many\n');
  expectUserError(() => loadConfig(file), /train\.epochs/, /expected number/, /"many"/);
});

test('a missing dataset is reported as required', () => {
  const file = writeYaml('name: t\ndata: {}\nmodel:\n  arch: vgg16\n');
  expectUserError(() => loadConfig(file), /data\.dataset/, /required/);
});

test('an unknown model lists the valid ones', () => {
  const file = writeYaml('name: t\ndata:\n  dataset: cifar10\nmodel:\n  arch: vgg19\n');
  expectUserError(() => loadConfig(file), /model\.arch/, /'vgg16'/, /"vgg19"/);
});

test('empty YAML, a list at the top level and billion-laughs anchors are refused', () => {
  expectUserError(() => loadConfig(writeYaml('')), /empty/);
  expectUserError(() => loadConfig(writeYaml('- 1\n- 2\n')), /mapping/);
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(', ')}]`);
  expectUserError(() => loadConfig(writeYaml(bomb.join('\n') + '\n')), /invalid YAML/);
});

test('--set refuses malformed paths', () => {
  assert.throws(() => applyOverrides({}, ['noequals']), UserError);
  assert.throws(() => applyOverrides({}, ['__proto__.x=1']), UserError);
  assert.throws(() => applyOverrides({ name: 'x' }, ['name.sub=1']), UserError);
});

test('every shipped config validates', () => {
  const dir = path.join(REPO_ROOT, 'configs');
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      // configs/sweeps/ holds sweep files (test/sweep/grid.test.ts expands them), not experiment configs.
      if (e.isDirectory()) {
        if (path.join(d, e.name) !== path.join(dir, 'sweeps')) walk(path.join(d, e.name));
      }
      else if (e.name.endsWith('.yaml')) files.push(path.join(d, e.name));
    }
  };
  walk(dir);
  assert.ok(files.length >= 20, `found ${files.length} configs`);
  for (const f of files) loadConfig(f);
});
