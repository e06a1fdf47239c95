#!/usr/bin/env node
'use strict';
// Runs every compiled test file (dist/test/**/*.test.js) with node's built-in test runner.
// Node 20 cannot take globs on the command line, so the files are listed here.
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..', 'dist', 'test');
const filter = process.argv[2];
function walk(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p));
    else if (entry.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = walk(root).filter((f) => !filter || f.includes(filter)).sort();
if (files.length === 0) {
  console.error('no test files found under ' + root);
  process.exit(1);
}
// Two test files run at once on 2 cores: one thread each for the optional native kernels.
const env = { ...process.env, IBRAR_NATIVE_THREADS: process.env.IBRAR_NATIVE_THREADS || '1' };
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', env });
process.exit(res.status === null ? 1 : res.status);
