#!/usr/bin/env node
// What the access middleware costs per request: the compiled api (npm run build first) is started
// three ways on the local Redis and the same request mix is timed against each, in interleaved
// rounds (the machine is shared and noisy; compare the columns, not the absolute figures).
//
//   baseline   no API keys, RATE_LIMIT_RPS=0          (the middleware only tags the request)
//   limiter    no API keys, a rate limit              (+ one EVALSHA per request)
//   keys       100 tenants' keys + a rate limit       (+ SHA-256 and 100 constant-time compares)
// The limit is set high (100000 req/s) so that it costs what it costs without refusing anything.
//
// Usage: node apps/api/bench/access-cost.js [requests per round, default 2000] [concurrency, default 16]
'use strict';
const { spawn } = require('node:child_process');
const { createHash, randomUUID } = require('node:crypto');
const http = require('node:http');
const path = require('node:path');

const MAIN = path.resolve(__dirname, '../dist/main.js');
const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const N = Number(process.argv[2] || 2000);
const CONCURRENCY = Number(process.argv[3] || 16);
const ROUNDS = 3;
const hex = (k) => createHash('sha256').update(k).digest('hex');
const key = `bench-${randomUUID()}`;
const keys = [`t0:${hex(key)}`, ...Array.from({ length: 99 }, (_, i) => `t${i + 1}:${hex(`other-${i}`)}`)].join(',');

function start(env) {
  const prefix = `bench-access-${randomUUID()}`;
  const child = spawn(process.execPath, [MAIN], {
    env: {
      PATH: process.env.PATH,
      NO_COLOR: '1',
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d) => {
      out += d;
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (c) => reject(new Error(`api exited ${c}: ${out}`)));
    const timer = setInterval(() => {
      const m = /listening on http:\/\/\S+:(\d+) /.exec(out);
      if (m) {
        clearInterval(timer);
        resolve({ child, port: Number(m[1]), prefix });
      }
    }, 50);
  });
}

function run(port, headers) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const lat = [];
  let next = 0;
  const one = () =>
    new Promise((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = http.request({ host: '127.0.0.1', port, path: '/v1/jobs?limit=1', headers, agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
          lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
  const worker = async () => {
    while (next++ < N) await one();
  };
  const t0 = Date.now();
  return Promise.all(Array.from({ length: CONCURRENCY }, worker)).then(() => {
    agent.destroy();
    lat.sort((a, b) => a - b);
    const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
    return { p50: q(0.5), p99: q(0.99), rps: (N / (Date.now() - t0)) * 1000 };
  });
}

/** The pieces alone, in-process: one limiter call against one PING (both one Redis round trip), and the key lookup. */
async function pieces() {
  const { Redis } = require('ioredis');
  const { RateLimiter } = require('../dist/http/rate-limit.js');
  const { KeyRing, parseApiKeys } = require('../dist/http/api-keys.js');
  const { redisKeys } = require('@relu-lstm/jobs');
  const prefix = `bench-access-${randomUUID()}`;
  const redis = new Redis(REDIS_URL);
  const limiter = new RateLimiter(redis, redisKeys(prefix));
  const ring = new KeyRing(parseApiKeys(keys, 'bench'), null);
  const M = 5000;
  const time = async (fn) => {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < M; i++) await fn();
    return Number(process.hrtime.bigint() - t0) / 1e3 / M; // µs per call
  };
  const r = { ping: [], limiter: [], keyLookup: [] };
  for (let round = 0; round < ROUNDS + 1; round++) {
    const ping = await time(() => redis.ping());
    const lim = await time(() => limiter.take({ kind: 'tenant', id: 't0' }, { rps: 1e6, burst: 2e6 }));
    const look = await time(() => ring.tenantOf(key));
    if (round > 0) (r.ping.push(ping), r.limiter.push(lim), r.keyLookup.push(look)); // round 0 warms up
  }
  await redis.del(redisKeys(prefix).rateLimit('tenant', 't0'));
  await redis.quit();
  const med = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`\nin-process, ${M} sequential calls x ${ROUNDS} rounds, median µs per call`);
  console.log(`redis PING                      ${med(r.ping).toFixed(1).padStart(7)}`);
  console.log(
    `RateLimiter.take (EVALSHA)      ${med(r.limiter).toFixed(1).padStart(7)}   ${(med(r.limiter) / med(r.ping)).toFixed(2)}x a PING`,
  );
  console.log(`KeyRing.tenantOf, 100 keys      ${med(r.keyLookup).toFixed(1).padStart(7)}`);
}

/** Deletes every key the api processes left under their prefixes (BullMQ's queue meta, rate buckets). */
async function dropPrefixes(prefixes) {
  const { Redis } = require('ioredis');
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    for (const prefix of prefixes) {
      let cursor = '0';
      do {
        const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (found.length) await redis.del(...found);
      } while (cursor !== '0');
    }
  } finally {
    await redis.quit();
  }
}

async function main() {
  const configs = [
    ['baseline', { RATE_LIMIT_RPS: '0' }, {}],
    ['limiter', {}, {}],
    ['keys', { API_KEYS: keys }, { authorization: `Bearer ${key}` }],
  ];
  const apis = [];
  for (const [name, env, headers] of configs)
    apis.push({ name, headers, ...(await start({ RATE_LIMIT_RPS: '100000', ...env })) });
  const results = Object.fromEntries(apis.map((a) => [a.name, []]));
  try {
    for (const a of apis) await run(a.port, a.headers); // warm-up
    for (let r = 0; r < ROUNDS; r++) for (const a of apis) results[a.name].push(await run(a.port, a.headers));
  } finally {
    await Promise.all(
      apis.map(
        (a) =>
          new Promise((resolve) => {
            a.child.once('exit', resolve);
            a.child.kill('SIGTERM');
          }),
      ),
    );
    await dropPrefixes(apis.map((a) => a.prefix));
  }
  const med = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const base = { p50: med(results.baseline.map((x) => x.p50)), p99: med(results.baseline.map((x) => x.p99)) };
  console.log(
    `GET /v1/jobs?limit=1, ${N} requests x ${ROUNDS} rounds, concurrency ${CONCURRENCY}; medians of the rounds`,
  );
  console.log('config     p50 ms   p99 ms   req/s   p50 vs baseline   p99 vs baseline');
  for (const a of apis) {
    const p50 = med(results[a.name].map((x) => x.p50));
    const p99 = med(results[a.name].map((x) => x.p99));
    const rps = med(results[a.name].map((x) => x.rps));
    console.log(
      `${a.name.padEnd(9)} ${p50.toFixed(2).padStart(7)} ${p99.toFixed(2).padStart(8)} ${rps.toFixed(0).padStart(7)}   ${(p50 / base.p50).toFixed(2).padStart(15)}x ${(p99 / base.p99).toFixed(2).padStart(16)}x`,
    );
  }
  await pieces();
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
