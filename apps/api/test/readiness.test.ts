// GET /ready against the real api process: the artifact store through its probe (a real S3 server
// that is stopped and started again, a directory that cannot be created), free disk of a file
// store, and per queue whether a live worker's heartbeat says it serves it. /health stays liveness.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { HEARTBEAT_TTL_MS, redisKeys, type WorkerHeartbeat } from '@relu-lstm/jobs';
import { S3Server } from '../../../libs/jobs/test/s3-server';
import { REDIS_URL, dropPrefix, http, sleep, startApi, type ApiProcess, type HttpResult } from './harness';

/** The store is probed at most once per HEALTH_PROBE_MS; short here so a change shows at once. */
const PROBE_MS = '100';

let redis: Redis;
const started: ApiProcess[] = [];

async function api(env: Record<string, string>): Promise<ApiProcess> {
  const a = await startApi({ HEALTH_PROBE_MS: PROBE_MS, ...env });
  started.push(a);
  return a;
}

/**
 * Polls /ready (every 50 ms, at most 5 s) until it answers `status` (and `until` holds); the last
 * answer. /ready answers from the last check and starts the next: a change shows within a check or two.
 */
async function readyUntil(a: ApiProcess, status: number, until: (r: HttpResult) => boolean = () => true) {
  const end = Date.now() + 5000;
  let r = await http(a.url, 'GET', '/ready');
  while (!(r.status === status && until(r)) && Date.now() < end) {
    await sleep(50);
    r = await http(a.url, 'GET', '/ready');
  }
  return r;
}

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  for (const a of started) {
    await a.stop();
    await dropPrefix(redis, a.prefix);
  }
  await redis.quit();
});

test('a file store: up with its free disk; queues served as the heartbeats say', async () => {
  const a = await api({});
  const r = await http(a.url, 'GET', '/ready');
  expect(r.status).toBe(200);
  expect(r.json).toMatchObject({
    status: 'ok',
    redis: 'up',
    store: { status: 'up', kind: 'file', error: null },
    queues: {
      gpu: { workers: 0, served: false },
      cpu: { workers: 0, served: false },
      any: { workers: 0, served: false },
    },
  });
  expect(r.json.store.freeBytes).toBeGreaterThan(0);
  expect(r.json.store.freeBytes).toBeLessThanOrEqual(r.json.store.totalBytes);

  // A CPU worker's heartbeat: cpu and any are served, gpu is not (reported, still 200).
  const keys = redisKeys(a.prefix);
  const hb: WorkerHeartbeat = {
    id: `w-${randomUUID()}`,
    backend: 'wasm',
    gpu: false,
    device: 'cpu',
    host: 'box',
    pid: 1,
    queues: ['cpu', 'any'],
    currentJobId: null,
    startedAt: Date.now(),
    at: Date.now(),
  };
  await redis
    .multi()
    .set(keys.worker(hb.id), JSON.stringify(hb), 'PX', HEARTBEAT_TTL_MS)
    .zadd(keys.workers(), Date.now() + HEARTBEAT_TTL_MS, hb.id)
    .exec();
  const served = await readyUntil(a, 200, (r) => r.json.queues?.cpu?.served === true);
  expect(served.status).toBe(200);
  expect(served.json.queues).toEqual({
    gpu: { workers: 0, served: false },
    cpu: { workers: 1, served: true },
    any: { workers: 1, served: true },
  });
});

test('a file store that cannot be created: 503 naming why; /health stays 200', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'ready-test-'));
  try {
    await writeFile(join(dir, 'a-file'), 'x');
    const a = await api({ ARTIFACT_DIR: join(dir, 'a-file', 'artifacts') });
    const r = await readyUntil(a, 503);
    expect(r.status).toBe(503);
    expect(r.json).toMatchObject({ status: 'unavailable', redis: 'up', store: { status: 'down', kind: null } });
    expect(r.json.store.error).toMatch(/ENOTDIR/);
    expect((await http(a.url, 'GET', '/health')).status).toBe(200);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('an S3 store: up, 503 while the server is stopped, up again when it is back', async () => {
  const s3 = await S3Server.start();
  try {
    await s3.createBucket('ready');
    const a = await api({ ...s3.env(), ARTIFACT_DIR: 's3://ready/artifacts' });
    const up = await http(a.url, 'GET', '/ready');
    expect([up.status, up.json.store]).toEqual([
      200,
      { status: 'up', kind: 's3', latencyMs: expect.any(Number), freeBytes: null, totalBytes: null, error: null },
    ]);

    await s3.kill();
    const down = await readyUntil(a, 503);
    expect([down.status, down.json.status, down.json.redis, down.json.store.status]).toEqual([
      503,
      'unavailable',
      'up',
      'down',
    ]);
    expect(down.json.store.error).toMatch(/bucket "ready"/);
    expect((await http(a.url, 'GET', '/health')).status).toBe(200);

    await s3.listen();
    expect((await readyUntil(a, 200)).status).toBe(200);
  } finally {
    await s3.stop();
  }
});
