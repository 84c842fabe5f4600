const { makeContract, FileDatasetStore } = require('@relu-lstm/jobs');
const { parseJsonUpload } = require('./apps/api/dist/datasets/stream-parse');
const store = new FileDatasetStore('/tmp/ds-t');
(async () => {
  const base = { x: [[[1, 2]]], y: [[1]], description: 'd' };
  const bodies = [];
  for (const key of ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf']) {
    const v = key === 'constructor' ? { prototype: { polluted: true } } : { polluted: true, isAdmin: true };
    bodies.push(JSON.stringify({ ...base, '@@KEY@@': v }).replace('"@@KEY@@"', JSON.stringify(key)));
  }
  bodies.push('5', 'null', 'true');
  for (const body of bodies) {
    const w = await store.writer('00000000-0000-4000-8000-000000000001');
    async function* c() { yield body; }
    try { const r = await parseJsonUpload(c(), makeContract(), w); console.log(body, JSON.stringify(r).slice(0, 150)); } catch (e) { console.log(body, 'THROW', e.stack.split('\n').slice(0,4).join(' | ')); }
    await w.abort();
  }
})();
