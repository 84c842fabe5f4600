#!/usr/bin/env node
// The relu-lstm command. A committed shim, so npm links the bin at install time, before the build
// writes dist/ (a bin pointing into dist/ is skipped by `npm ci` on a fresh clone).
require('../dist/cli.js');
