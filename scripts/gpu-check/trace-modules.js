/**
 * Loaded with `node --require` by pack.js: at exit, appends the path of every module Node loaded
 * (JavaScript, JSON and native addons) to the file named by GPU_CHECK_TRACE.
 */
'use strict';
const fs = require('node:fs');

process.on('exit', () => {
  fs.appendFileSync(process.env.GPU_CHECK_TRACE, Object.keys(require.cache).join('\n') + '\n');
});
