#!/usr/bin/env node
'use strict';
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
const path = require('path');
const entry = path.join(__dirname, '..', 'dist', 'src', 'cli', 'main.js');
try {
  require.resolve(entry);
} catch {
  process.stderr.write('ibrar: dist/ is missing; run `npm ci` (or `npm run build`) in ' + path.join(__dirname, '..') + '\n');
  process.exit(1);
}
require(entry).main(process.argv.slice(2));
