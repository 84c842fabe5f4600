/**
 * Hostile but valid requests (issue 10) against a real api process: big dataset uploads at once,
 * with /health polled throughout and the api's peak RSS (VmHWM) bounded.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, FLOAT32_EXPECTED, redisKeys } from '@relu-lstm/jobs';
import { REDIS_URL, dropPrefix, http, readSse, startApi, type ApiProcess } from './harness';

/** Peak resident memory of a process, in MB, from /proc/<pid>/status. */
export async function peakRssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB/m.exec(status)![1]) / 1024;
}

/** Polls GET /health every `everyMs` until stopped; records each status and latency. */
export function pollHealth(url: string, everyMs = 100): { stop(): Promise<{ statuses: number[]; maxMs: number }> } {
  const statuses: number[] = [];
  let maxMs = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t0 = Date.now();
      const r = await http(url, 'GET', '/health', { timeoutMs: 30_000 }).catch(() => ({ status: 0 }));
      statuses.push(r.status);
      maxMs = Math.max(maxMs, Date.now() - t0);
      await new Promise((res) => setTimeout(res, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { statuses, maxMs };
    },
  };
}

/**
 * POSTs a file as the body, streamed from disk. Keep-alive, as curl sends it: a server that refuses
 * before reading the body drops the rest and answers; with `Connection: close` it would close the
 * socket under a client still sending (EPIPE) instead.
 */

function upload(
  url: string,
  file: string,
  size: number,
  contentType: string,
): Promise<{ status: number; json: any; ms: number; retryAfter?: string }> {
  const t0 = Date.now();
  return new Promise((res, rej) => {
    const req = httpRequest(
      new URL('/v1/datasets', url),
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': contentType, 'content-length': String(size), connection: 'keep-alive' },
      },
      (r) => {
        let text = '';
        r.setEncoding('utf8');
        r.on('data', (c: string) => (text += c));
        r.on('end', () => {
          req.destroy();
          res({
            status: r.statusCode ?? 0,
            json: JSON.parse(text),
            ms: Date.now() - t0,
            retryAfter: r.headers['retry-after'] as string | undefined,
          });
        });
      },
    );
    req.on('error', rej);
    const body = createReadStream(file);
    body.pipe(req);
    // The server may answer (503) before reading the body; stop sending then.
    req.on('response', () => body.destroy());
  });
}

/** The issue's repro: `{ x, y }` with 10000 samples of 500 steps of one feature, ~90 MB. */
async function writeReproJson(file: string): Promise<number> {
  const s = `[${Array(500).fill('[0.1234]').join(',')}]`;
  const a = `[${Array(10000).fill(s).join(',')}]`;
  await writeFile(file, `{"x":${a},"y":${a}}`);
  return (await stat(file)).size;
}

/** Samples of the CSV repro: as many as fit ~90 MB. */
const CSV_SAMPLES = 7600;

/** The same numbers as CSV, `sample,step,x0,y0`, one row per step. */
async function writeReproCsv(file: string): Promise<number> {
  const rows: string[] = ['sample,step,x0,y0'];
  for (let n = 0; n < CSV_SAMPLES; n++) for (let t = 0; t < 500; t++) rows.push(`s${n},${t},0.1234,0.1234`);
  await writeFile(file, rows.join('\n'));
  return (await stat(file)).size;
}

/** Peak RSS the api may reach with MAX_DATASET_UPLOADS (2) uploads of ~90 MB being parsed. */
const UPLOAD_PEAK_RSS_MB = 250;

describe('three concurrent ~90 MB dataset uploads', () => {
  let api: ApiProcess;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hostile-'));
    api = await startApi();
  }, 60_000);
  afterAll(async () => {
    await api.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test.each([
    ['JSON', 'application/json', writeReproJson, 10000],
    ['CSV', 'text/csv', writeReproCsv, CSV_SAMPLES],
  ])(
    '%s: two are stored, the third gets 503 with Retry-After; /health stays 200; RSS bounded',
    async (kind, type, make, samples) => {
      const file = join(dir, `ds.${kind}`);
      const size = await make(file);
      const health = pollHealth(api.url);
      const t0 = Date.now();
      const results = await Promise.all([0, 1, 2].map(() => upload(api.url, file, size, type)));
      const took = Date.now() - t0;
      const { statuses, maxMs } = await health.stop();
      const peak = await peakRssMb(api.child.pid!);
      console.log(
        `${kind} upload of ${(size / 1e6).toFixed(1)} MB x3: statuses ${results.map((r) => `${r.status} in ${r.ms} ms`).join(', ')}; ` +
          `all done in ${took} ms; api peak RSS ${peak.toFixed(0)} MB; /health ${statuses.length} polls, slowest ${maxMs} ms`,
      );
      const stored = results.filter((r) => r.status === 201);
      const refused = results.filter((r) => r.status === 503);
      expect(stored.length + refused.length).toBe(3);
      expect(stored.length).toBeGreaterThanOrEqual(1);
      for (const r of stored)
        expect(r.json).toMatchObject({ samples, seqLen: 500, inputSize: 1, targetShape: [samples, 500, 1] });
      for (const r of refused) expect([r.json.error.code, r.retryAfter]).toEqual(['unavailable', '5']);
      expect(statuses.length).toBeGreaterThan(0);
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(peak).toBeLessThan(UPLOAD_PEAK_RSS_MB);
      // What was stored reads back as the body sent.
      const back = JSON.parse(await readFile(join(api.datasetDir, `${stored[0].json.id}.json`), 'utf8'));
      expect([back.x.length, back.x[samples - 1].length, back.x[samples - 1][499][0], back.y[0][0][0]]).toEqual([
        samples,
        500,
        0.1234,
        0.1234,
      ]);
      await rm(file);
    },
    600_000,
  );
});

/** A redis-server of the test's own on a free port, so it can be slowed and stopped. */
async function startRedis(): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await new Promise<number>((res) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => res(p));
    });
  });
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--enable-debug-command',
      'yes',
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
    const ok = await probe.connect().then(
      () => true,
      () => false,
    );
    probe.disconnect();
    if (ok) break;
    if (i > 50) throw new Error('redis-server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async stop() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('/health and /ready with a slow, then a stopped Redis', () => {
  test('DEBUG SLEEP 3 is latency in /ready, /health stays 200; a stopped Redis is 503 at once', async () => {
    const redis = await startRedis();
    const api = await startApi({ REDIS_URL: redis.url, HEALTH_PROBE_MS: '200' });
    const admin = new Redis(redis.url);
    try {
      expect((await http(api.url, 'GET', '/health')).status).toBe(200);
      const sleeping = admin.call('DEBUG', 'SLEEP', '3');
      const health = pollHealth(api.url, 50);
      let latency = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 2800) {
        const r = await http(api.url, 'GET', '/ready', { timeoutMs: 1000 });
        expect(r.status).toBe(200);
        latency = Math.max(latency, r.json.redisLatencyMs ?? 0);
        await new Promise((res) => setTimeout(res, 100));
      }
      const { statuses, maxMs } = await health.stop();
      await sleeping;
      console.log(
        `DEBUG SLEEP 3: /health ${statuses.length} polls, all ${[...new Set(statuses)].join('/')}, slowest ${maxMs} ms; /ready showed Redis latency up to ${latency} ms`,
      );
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect(maxMs).toBeLessThan(1000);
      expect(latency).toBeGreaterThanOrEqual(2000);

      await redis.stop();
      const t1 = Date.now();
      let down = await http(api.url, 'GET', '/health');
      while (down.status !== 503 && Date.now() - t1 < 5000) down = await http(api.url, 'GET', '/health');
      console.log(`Redis stopped: /health 503 after ${Date.now() - t1} ms`);
      expect([down.status, down.json]).toEqual([503, { status: 'unavailable', redis: 'down' }]);
      expect(Date.now() - t1).toBeLessThan(2000);
      expect((await http(api.url, 'GET', '/ready')).status).toBe(503);
    } finally {
      admin.disconnect();
      await api.stop();
      await redis.stop();
    }
  }, 60_000);
});

/** Deletes every key under a test's prefix (the big payloads must not stay in the shared Redis). */
async function dropKeys(prefix: string): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    await dropPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

describe('status reads of a job with a 9.6 MB inline payload', () => {
  test('20 concurrent GETs read its size, never the payload', async () => {
    const prefix = `test-${randomUUID()}`;
    // inputs [24, 1000, 100]: 2.4M numbers, 4 bytes each.
    const row = `[${Array(100).fill('0.5').join(',')}]`;
    const sample = `[${Array(1000).fill(row).join(',')}]`;
    const body = `{"model":{"config":{"inputSize":100,"hiddenSize":4,"outputSize":1},"stateDict":{}},"inputs":[${Array(24).fill(sample).join(',')}],"device":"cpu"}`;
    const submitter = await startApi({ QUEUE_PREFIX: prefix, BODY_LIMIT: '12mb' });
    let id: string;
    try {
      const r = await http(submitter.url, 'POST', '/v1/jobs/infer', {
        raw: body,
        headers: { 'content-type': 'application/json' },
      });
      expect(r.status).toBe(202);
      id = r.json.id;
    } finally {
      await submitter.stop();
    }
    // A fresh process, so its peak RSS is that of the reads alone.
    const api = await startApi({ QUEUE_PREFIX: prefix });
    try {
      // The queue connection of a fresh api may still be connecting (503): wait for its first answer.
      for (let i = 0; (await http(api.url, 'GET', `/v1/jobs/${id}`)).status !== 200 && i < 50; i++)
        await new Promise((res) => setTimeout(res, 100));
      const before = await peakRssMb(api.child.pid!);
      const t0 = Date.now();
      const views = await Promise.all(Array.from({ length: 20 }, () => http(api.url, 'GET', `/v1/jobs/${id}`)));
      const took = Date.now() - t0;
      const list = await http(api.url, 'GET', '/v1/jobs');
      const after = await peakRssMb(api.child.pid!);
      console.log(
        `20 concurrent GETs of a job with a ${(body.length / 1e6).toFixed(1)} MB payload: ${took} ms; api peak RSS ${before.toFixed(0)} -> ${after.toFixed(0)} MB`,
      );
      for (const v of views) {
        expect(v.status).toBe(200);
        expect(v.json).toMatchObject({
          id,
          state: 'queued',
          payloadBytes: expect.any(Number),
          links: { self: `/v1/jobs/${id}` },
        });
        expect(v.json.payloadBytes).toBeGreaterThan(9_000_000);
        expect(v.text.length).toBeLessThan(2000);
      }
      expect(list.json.items).toEqual([views[0].json]);
      expect(after - before).toBeLessThan(40);
      expect(took).toBeLessThan(5000);
    } finally {
      await api.stop();
      await dropKeys(prefix);
    }
  }, 120_000);
});

/** Opens an SSE request on a raw socket and never reads from it. */
function pausedReader(url: string, path: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((res, rej) => {
    const socket = connect(Number(u.port), u.hostname, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      res(socket);
    });
    socket.on('error', () => undefined);
    socket.once('error', rej);
  });
}

/** What 100 paused readers may add to the api's peak RSS (each holds at most SSE_MAX_BUFFER_BYTES unsent, one batch read). */
const SSE_READERS_RSS_MB = 200;

describe('SSE backpressure', () => {
  test('100 paused readers of a 100k-event stream: RSS bounded; stalled readers are closed and their places freed', async () => {
    const prefix = `test-${randomUUID()}`;
    const api = await startApi({ QUEUE_PREFIX: prefix, SSE_STALL_MS: '15000', MAX_STREAMS_PER_TENANT: '100' });
    const redis = new Redis(REDIS_URL);
    const sockets: Socket[] = [];
    try {
      const r = await http(api.url, 'POST', '/v1/jobs/train', {
        body: { ...JSON.parse(JSON.stringify(CANONICAL_TRAIN_EXAMPLE)), device: 'gpu' },
      });
      expect(r.status).toBe(202);
      const id = r.json.id as string;
      const key = redisKeys(prefix).events(id);
      const at = Date.now();
      for (let i = 0; i < 100_000; i += 5000) {
        const p = redis.pipeline();
        for (let k = i; k < i + 5000; k++) {
          p.xadd(
            key,
            '*',
            'event',
            JSON.stringify({
              type: 'metric',
              at,
              epoch: 0,
              step: k,
              loss: 0.5 + k / 1e6,
              valLoss: null,
              gradNorm: 1.25,
              samplesPerSec: 1000.5,
              elapsedMs: k,
            }),
          );
        }
        await p.exec();
      }
      const before = await peakRssMb(api.child.pid!);
      for (let i = 0; i < 100; i++) sockets.push(await pausedReader(api.url, `/v1/jobs/${id}/events`));
      await new Promise((res) => setTimeout(res, 2000));
      const tail = `/v1/jobs/${id}/events?after=99999999999999-0`;
      expect((await readSse(api.url, tail, { timeoutMs: 1000 })).status).toBe(429);
      await new Promise((res) => setTimeout(res, 4000));
      const peak = await peakRssMb(api.child.pid!);
      const health = await http(api.url, 'GET', '/health');
      // Past SSE_STALL_MS the full connections are closed and their places come free.
      const t0 = Date.now();
      let again = await readSse(api.url, tail, { timeoutMs: 300 });
      while (again.status !== 200 && Date.now() - t0 < 60_000) {
        await new Promise((res) => setTimeout(res, 500));
        again = await readSse(api.url, tail, { timeoutMs: 300 });
      }
      console.log(
        `100 paused SSE readers of 100k events: api peak RSS ${before.toFixed(0)} -> ${peak.toFixed(0)} MB; a place free again ${Date.now() - t0} ms after (SSE_STALL_MS 15000)`,
      );
      expect(again.status).toBe(200);
      expect(health.status).toBe(200);
      expect(peak - before).toBeLessThan(SSE_READERS_RSS_MB);
    } finally {
      for (const s of sockets) s.destroy();
      redis.disconnect();
      await api.stop();
      await dropKeys(prefix);
    }
  }, 120_000);
});

describe('data checks before the queue', () => {
  let api: ApiProcess;
  beforeAll(async () => {
    api = await startApi();
  }, 60_000);
  afterAll(() => api.stop());

  test('a number past float32 in inline inputs is a 400 naming it; nothing is queued', async () => {
    const body = {
      model: { config: { inputSize: 1, hiddenSize: 2, outputSize: 1 }, stateDict: {} },
      inputs: [[[1], [1e39]]],
    };
    const r = await http(api.url, 'POST', '/v1/jobs/infer', { body });
    expect(r.status).toBe(400);
    expect(r.json.error.issues).toEqual([
      expect.objectContaining({ path: 'inputs[0][1][0]', expected: FLOAT32_EXPECTED, received: '1e+39' }),
    ]);
    expect((await http(api.url, 'GET', '/v1/jobs')).json.items).toEqual([]);
  });

  test('CSV: a duplicated header is a 400 naming it; a hex number a 400 naming its cell', async () => {
    const dup = await http(api.url, 'POST', '/v1/datasets', {
      raw: 'sample,step,x0,y0,x0\na,0,1,2,3\n',
      headers: { 'content-type': 'text/csv' },
    });
    expect([dup.status, dup.json.error.issues[0]]).toEqual([
      400,
      expect.objectContaining({ path: 'line 1.x0', message: 'duplicate column', received: '"x0" twice' }),
    ]);
    const hex = await http(api.url, 'POST', '/v1/datasets', {
      raw: 'sample,step,x0,y0\na,0,0x10,2\n',
      headers: { 'content-type': 'text/csv' },
    });
    expect([hex.status, hex.json.error.issues[0]]).toEqual([
      400,
      expect.objectContaining({ path: 'line 2.x0', received: '"0x10"' }),
    ]);
  });
});
