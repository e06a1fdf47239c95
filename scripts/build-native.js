#!/usr/bin/env node
'use strict';
// Builds the optional native kernels (native/ → native/build/Release/ibrar_native.node) with
// node-gyp against oneDNN (libdnnl-dev; OpenBLAS from libopenblas-dev is linked too when
// present, for alternative benchmark engines only). Run by `npm ci`
// through the prepare script, so it must never fail the install: whatever goes wrong, it
// prints one line saying why and exits 0, and ibrar then uses its wasm kernels.
//
// node-gyp is never allowed to download Node headers: it is pointed at installed ones
// (npm's nodedir setting, or <node prefix>/include/node) or the build is skipped.
//
// Environment: IBRAR_NATIVE=0 skips the build; IBRAR_NATIVE_VERBOSE=1 shows compiler output.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ROOT = path.join(__dirname, '..');
const NATIVE = path.join(ROOT, 'native');
const ADDON = path.join(NATIVE, 'build', 'Release', 'ibrar_native.node');
const LOG = path.join(NATIVE, 'build', 'build-native.log');
const verbose = process.env.IBRAR_NATIVE_VERBOSE === '1';

function skip(reason) {
  process.stdout.write(`ibrar: native kernels not built (${reason}); using wasm kernels\n`);
  process.exit(0);
}

/** node-gyp's CLI script: the one npm ships (npm passes its path to lifecycle scripts) or a local one. */
function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath) {
    // .../npm/bin/npm-cli.js → .../npm/node_modules/node-gyp/bin/node-gyp.js
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  const prefix = path.join(path.dirname(process.execPath), '..');
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] }));
  } catch {
    // not installed locally
  }
  return candidates.find((c) => c && fs.existsSync(c)) || null;
}

/** A directory with include/node/node_api.h and common.gypi, so node-gyp needs no download. */
function findNodeDir() {
  const candidates = [process.env.npm_config_nodedir, path.join(path.dirname(process.execPath), '..'), '/usr', '/usr/local'];
  return (
    candidates.find(
      (dir) => dir && fs.existsSync(path.join(dir, 'include', 'node', 'node_api.h')) && fs.existsSync(path.join(dir, 'include', 'node', 'common.gypi')),
    ) || null
  );
}

function hasCommand(cmd) {
  const r = spawnSync(cmd, ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

function findHeader(names) {
  const dirs = ['/usr/include', '/usr/local/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/opt/homebrew/include'];
  return names.some((n) => dirs.some((d) => fs.existsSync(path.join(d, n))));
}

/** The most telling line of a failed build's output, for the one-line summary. */
function firstError(output) {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const patterns = [/cannot find -l|undefined reference/, /fatal error:|\berror:/, /^gyp ERR! stack Error:/];
  for (const p of patterns) {
    const hit = lines.find((l) => p.test(l));
    if (hit) return hit.replace(/^gyp ERR! stack /, '').slice(0, 160);
  }
  return (lines.pop() || 'unknown error').slice(0, 160);
}
module.exports = { firstError };

function main() {
  const flag = process.env.IBRAR_NATIVE;
  if (flag === '0' || flag === 'off' || flag === 'false') skip('disabled by IBRAR_NATIVE');
  if (!fs.existsSync(path.join(NATIVE, 'binding.gyp'))) skip('native/binding.gyp is missing');
  if (!hasCommand(process.env.CXX || 'c++') && !hasCommand('g++')) skip('no C++ compiler (install g++)');
  if (!hasCommand('make')) skip('make is missing');
  if (!findHeader(['oneapi/dnnl/dnnl.hpp', 'dnnl.hpp'])) skip('oneDNN headers not found (install libdnnl-dev)');
  const gyp = findNodeGyp();
  if (!gyp) skip('node-gyp not found (it ships with npm)');
  const nodedir = findNodeDir();
  if (!nodedir) skip(`Node ${process.version} headers not found (install the nodejs dev headers or set npm's nodedir)`);

  const started = Date.now();
  const args = [gyp, 'rebuild', `--nodedir=${nodedir}`, '--jobs', String(Math.max(1, os.cpus().length))];
  const r = spawnSync(process.execPath, args, {
    cwd: NATIVE,
    encoding: 'utf8',
    stdio: verbose ? 'inherit' : 'pipe',
    env: { ...process.env, npm_config_nodedir: nodedir },
  });
  const output = `${r.stdout || ''}\n${r.stderr || ''}`;
  if (r.error || r.status !== 0) {
    try {
      fs.mkdirSync(path.dirname(LOG), { recursive: true });
      fs.writeFileSync(LOG, output);
    } catch {
      // the summary line is enough
    }
    const why = r.error ? r.error.message : firstError(output);
    skip(`${why}${verbose ? '' : `; full log: ${path.relative(process.cwd(), LOG)}`}`);
  }
  if (!fs.existsSync(ADDON)) skip('node-gyp finished but produced no addon');

  // A fresh process proves the addon links against the installed libraries at load time.
  const probe = spawnSync(
    process.execPath,
    ['-e', `const a = require(${JSON.stringify(ADDON)}); process.stdout.write(a.info().runtime + '; ' + a.info().threads + ' threads')`],
    { encoding: 'utf8' },
  );
  if (probe.status !== 0) {
    const why = (probe.stderr || '').split('\n').find((l) => /Error/.test(l)) || 'it does not load';
    fs.rmSync(ADDON, { force: true });
    skip(`built but not loadable: ${why.trim().slice(0, 160)}`);
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(0);
  process.stdout.write(`ibrar: native kernels built in ${seconds}s (${probe.stdout.trim()})\n`);
}

if (require.main === module) {
  try {
    main();
  } catch (err) {
    skip(`build script error: ${err && err.message ? err.message.split('\n')[0] : String(err)}`);
  }
}
