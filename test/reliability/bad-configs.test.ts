// Bad configs (test/fixtures/bad/configs/*.yaml, one fault each, described in its first line)
// and bad command-line arguments, each run through `ibrar train` / `ibrar eval` in a child
// process. See bad-input.ts for the rule every case must follow.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'fs';
import * as path from 'path';
import { FIXTURES, checkBadCase, type BadCase } from './bad-input';
import { pool } from './cli';

/** Fixture → what the message must say after `ibrar: <file>: `. */
const CONFIGS: Record<string, RegExp> = {
  'empty.yaml': /^the config is empty/,
  'comments-only.yaml': /^the config is empty/,
  'top-level-list.yaml': /^expected a mapping at the top level, found a list/,
  'top-level-scalar.yaml': /^expected a mapping at the top level, found string/,
  'syntax-unclosed-flow.yaml': /^invalid YAML: .* at line 4, column 1/,
  'syntax-tab-indent.yaml': /^invalid YAML: Tabs are not allowed as indentation at line 4/,
  'duplicate-key.yaml': /^invalid YAML: Map keys must be unique at line 8/,
  'billion-laughs.yaml': /^invalid YAML: Excessive alias count/,
  'unknown-top-key.yaml': /^epochs: unknown key/,
  'unknown-nested-key.yaml': /^train\.epoch: unknown key/,
  'missing-name.yaml': /^name: required string is missing/,
  'missing-model.yaml': /^model: required object is missing/,
  'name-path-escape.yaml': /^name: letters, digits.* \(found "\.\.\/escape"\)/,
  'name-number.yaml': /^name: expected string, found number 123/,
  'epochs-string.yaml': /^train\.epochs: expected number, found "ten"/,
  'epochs-negative.yaml': /^train\.epochs: .*greater than 0 \(found number -2\)/,
  'epochs-fraction.yaml': /^train\.epochs: expected integer, found number 2\.5/,
  'batch-size-zero.yaml': /^train\.batchSize: .*greater than 0/,
  'lr-negative.yaml': /^train\.lr: .*greater than 0 \(found number -0\.1\)/,
  'lr-infinite.yaml': /^train\.lr: expected a finite number, found Infinity/,
  'lr-overflow.yaml': /^train\.lr: expected a finite number, found Infinity/,
  'momentum-above-one.yaml': /^train\.momentum: .*less than or equal to 1/,
  'train-eps-negative.yaml': /^train\.attack\.eps: ε must be ≥ 0 \(found number -0\.03\)/,
  'train-eps-above-one.yaml': /^train\.attack\.eps: ε is an L∞ budget on pixels in \[0, 1\]; write 8\/255, not 8 \(found number 8\)/,
  'eval-eps-above-one.yaml': /^eval\.eps: ε is an L∞ budget .* \(found "8\/2"\)/,
  'eps-division-by-zero.yaml': /^eval\.eps: Number must be finite \(found "8\/0"\)/,
  'eps-not-a-number.yaml': /^eval\.eps: a number or a fraction like "8\/255" \(found "eight\/255"\)/,
  'unknown-dataset.yaml': /^data\.dataset: expected one of .* found "imagenet"/,
  'unknown-arch.yaml': /^model\.arch: expected one of .* found "resnet50"/,
  'unknown-method.yaml': /^train\.method: expected one of .* found "fgsm-at"/,
  'unknown-eval-attack.yaml': /^eval\.attacks\.1: unknown attack 'onepixel'; valid attacks: .*pgd/,
  'unknown-probe-attack.yaml': /^probe\.attack: unknown attack 'boundary'/,
  'unknown-ib-layer.yaml': /^ib\.layers: unknown tap 'conv9'; valid taps of small-cnn: conv1, conv2, conv3, fc1/,
  'ib-layers-empty.yaml': /^ib\.layers: .*at least 1/,
  'ib-alpha-nan.yaml': /^ib\.alpha: expected a finite number, found NaN/,
  'ib-beta-infinite.yaml': /^ib\.beta: expected a finite number, found -Infinity/,
  'ib-alpha-string.yaml': /^ib\.alpha: expected number, found "small"/,
  'ib-sigma-zero.yaml': /^ib\.sigma: .*greater than 0/,
  'mask-drop-above-one.yaml': /^ib\.mask\.drop: .*less than or equal to 1 \(found number 1\.5\)/,
  'unknown-backend.yaml': /^backend: expected one of .* found "cuda"/,
  'seed-negative.yaml': /^seed: .*greater than or equal to 0/,
  'schedule-unknown.yaml': /^train\.schedule\.type: expected one of 'step', 'none', found "cosine"/,
  'nan-policy-unknown.yaml': /^train\.nanPolicy: expected one of 'stop', 'skip', found "ignore"/,
  'checkpoint-every-zero.yaml': /^train\.checkpointEvery: .*greater than 0/,
  'eval-checkpoint-unknown.yaml': /^eval\.checkpoint: expected one of 'last', 'best', found "middle"/,
  'dropout-above-one.yaml': /^model\.dropout: .*less than or equal to 1/,
  'normalize-wrong-length.yaml': /^model\.normalize needs one mean and one std per input channel \(3\), got 2 means/,
  'train-section-list.yaml': /^train: expected object, found a list/,
  'synthetic-one-class.yaml': /^data\.synthetic\.classes: .*greater than or equal to 2/,
  // Sizes against the dataset are found by validation (official sizes, or data.synthetic).
  'subset-too-large.yaml': /^data\.trainSubset\.n: 1000 is more than the 32 images of the synthetic training split/,
  'split-from-test-too-large.yaml': /^data\.splitFromTest: 500 is not below the 16 images of the synthetic test set/,
  'wrn-bad-depth.yaml': /^model\.depth: must be 6n\+4 .* for wrn, got 27/,
  // Tags are errors, never warnings printed by the parser (and never constructed).
  'yaml-tag-python.yaml': /^invalid YAML: Unresolved tag: tag:yaml\.org,2002:python\/object:os\.system at line 8, column 8; configs take plain values, without YAML tags$/,
  'yaml-tag-custom.yaml': /^invalid YAML: Unresolved tag: !foo at line 8, column 17; configs take plain values/,
  'yaml-tag-binary.yaml': /^invalid YAML: Unresolved tag: tag:yaml\.org,2002:binary at line 7/,
  'nesting-too-deep.yaml': /^invalid YAML: the document nests too deeply \(more than 32 levels\)/,
  // Values valid alone but impossible for the RNG, the model or the data: refused by validation,
  // before the run dir exists, naming the real key path.
  'seed-beyond-32-bits.yaml': /^seed: the RNG takes 32-bit seeds, 0\.\.4294967295; a larger one would repeat the run of a smaller one \(found number 4294967296\)/,
  'eval-seed-beyond-32-bits.yaml': /^eval\.seed: the RNG takes 32-bit seeds, 0\.\.4294967295/,
  'hbar-layers-unknown-tap.yaml': /^train\.hbar\.layers: unknown tap 'block5'; valid taps of small-cnn: conv1, conv2, conv3, fc1$/,
  'ib-layers-duplicate.yaml': /^ib\.layers: lists 'conv1' more than once$/,
  'mask-wider-than-tap.yaml': /^ib\.mask: lowY \+ highX = 40, but the mask tap conv3 of small-cnn \(model\.width 0\.25\) has 32 channels/,
  'crop-padding-not-below-image.yaml': /^data\.augment\.cropPadding: 8 is not below the image size \(8x8\)/,
  'subset-beyond-official-size.yaml': /^data\.trainSubset\.n: 60000 is more than the 50000 images of the official cifar10 training split$/,
  'test-subset-beyond-holdout.yaml': /^data\.testSubset\.n: 2000 is more than the 1000 images of the official mnist test split \(after data\.splitFromTest: 1000\)$/,
  'synthetic-beyond-memory.yaml': /^data\.synthetic\.trainSize: 100000 × 256x256x3 needs 19660800000 bytes \(18\.3 GiB\) in one buffer; at most 4294967296 bytes/,
  'train-attack-step-zero.yaml': /^train\.attack\.alpha: the step size defaults to ε\/steps·2\.3, which is 0 with train\.attack\.eps 0; train\.method 'pgd-at' needs a positive step/,
  'eval-param-eps-above-one.yaml': /^eval\.params\.pgd\.eps: ε is an L∞ budget on pixels in \[0, 1\]; write 8\/255, not 8$/,
};

const configCases: BadCase[] = Object.entries(CONFIGS).map(([name, expect]) => ({
  name,
  file: () => path.join(FIXTURES, 'configs', name),
  setup: () => ['train', '--config', path.join(FIXTURES, 'configs', name)],
  expect,
}));

const good = path.join(FIXTURES, 'configs', 'unknown-probe-attack.yaml'); // valid but for probe.attack
const argCases: BadCase[] = [
  {
    name: 'config file missing',
    file: (cwd) => path.join(cwd, 'nope.yaml'),
    setup: (cwd) => ['train', '--config', path.join(cwd, 'nope.yaml')],
    expect: /^cannot read config: ENOENT/,
  },
  {
    name: 'config is a folder',
    file: (cwd) => cwd,
    setup: (cwd) => ['train', '--config', cwd],
    expect: /^expected a YAML file, found a directory/,
  },
  {
    name: '--set with a value of the wrong type',
    file: () => '--set train.epochs',
    setup: () => ['train', '--config', good, '--set', 'probe.attack=pgd', '--set', 'train.epochs=many'],
    expect: /^expected number, found "many"/,
  },
  {
    name: '--set of an unknown key',
    file: () => '--set train.epochz',
    setup: () => ['train', '--config', good, '--set', 'probe.attack=pgd', '--set', 'train.epochz=2'],
    expect: /^unknown key; did you mean 'train\.epochs'\?/,
  },
  {
    name: '--set into a value that is not a section',
    file: () => '--set name.x',
    setup: () => ['train', '--config', good, '--set', 'name.x=1'],
    expect: /^'name' is not a section/,
  },
];

test('the corpus has at least 40 bad configs, each listed here with its expected message', () => {
  const files = fs.readdirSync(path.join(FIXTURES, 'configs')).filter((f) => f.endsWith('.yaml')).sort();
  assert.ok(files.length >= 40, `${files.length} configs`);
  assert.deepEqual(files, Object.keys(CONFIGS).sort(), 'every fixture has an expectation and vice versa');
});

test(`${configCases.length} bad configs and ${argCases.length} bad arguments: exit 2, one message naming file and field, nothing written`, { timeout: 300_000 }, async () => {
  const all = [...configCases, ...argCases];
  const failures: string[] = [];
  await pool(all, 3, async (c) => {
    try {
      await checkBadCase(c);
    } catch (err) {
      failures.push((err as Error).message);
    }
  });
  assert.deepEqual(failures, []);
});

test('--debug adds the stack trace to the same message', { timeout: 30_000 }, async () => {
  await checkBadCase(configCases.find((c) => c.name === 'lr-infinite.yaml')!, true);
});
