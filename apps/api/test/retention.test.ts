// The api's part of retention, against the real api process and Redis: the keep settings reach the
// BullMQ job's removeOnComplete / removeOnFail, and a job cancelled before it started (no worker
// will ever record its end) gets the failed jobs' keep-age on its records.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, redisKeys } from '@relu-lstm/jobs';
import { REDIS_URL, dropPrefix, http, startApi, type ApiProcess } from './harness';

let api: ApiProcess;
let redis: Redis;
let queue: Queue;

beforeAll(async () => {
  api = await startApi({
    JOB_KEEP_COMPLETED_SEC: '120',
    JOB_KEEP_COMPLETED_COUNT: '5',
    JOB_KEEP_FAILED_SEC: '60',
    JOB_KEEP_FAILED_COUNT: '7',
  });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  queue = new Queue('any', { connection: { url: REDIS_URL }, prefix: api.prefix });
});

afterAll(async () => {
  await api?.stop();
  await queue?.close();
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
});

test('the keep settings become the job options, and a job cancelled while queued expires with the failed ones', async () => {
  const r = await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE });
  expect(r.status).toBe(202);
  const id: string = r.json.id;
  const job = await queue.getJob(id);
  expect(job!.opts.removeOnComplete).toEqual({ age: 120, count: 5 });
  expect(job!.opts.removeOnFail).toEqual({ age: 60, count: 7 });
  const keys = redisKeys(api.prefix);
  // Queued: kept without a TTL.
  expect(await redis.pttl(keys.jobMeta(id))).toBe(-1);

  const c = await http(api.url, 'DELETE', `/v1/jobs/${id}`);
  expect(c.status).toBe(200);
  expect(c.json.state).toBe('cancelled');
  for (const key of [keys.jobMeta(id), keys.events(id), keys.cancel(id)]) {
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(50_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  }
  // Still readable until then.
  expect((await http(api.url, 'GET', `/v1/jobs/${id}`)).json.state).toBe('cancelled');
});

test('an Idempotency-Key whose job is past retention starts over; one still in flight answers 409', async () => {
  const keys = redisKeys(api.prefix);
  const headers = { 'idempotency-key': `ret-${Date.now()}` };
  const first = await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE, headers });
  expect(first.status).toBe(202);
  const replay = await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE, headers });
  expect(replay.json.id).toBe(first.json.id);

  // The job's records are gone (as retention removes them), the key is minutes old: a new job.
  const idemKey = keys.idempotency('default', headers['idempotency-key']);
  await redis.del(keys.jobMeta(first.json.id));
  await redis.expire(idemKey, 3600);
  const again = await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE, headers });
  expect(again.status).toBe(202);
  expect(again.json.id).not.toBe(first.json.id);

  // A fresh key whose job has no meta yet: the first request is still in flight.
  await redis.del(keys.jobMeta(again.json.id));
  await redis.expire(idemKey, 24 * 3600);
  const inFlight = await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE, headers });
  expect(inFlight.status).toBe(409);

  // Concurrent retries of a key whose job is gone: one of them starts the new job, the others
  // replay it or answer 409, never a job each.
  await redis.del(keys.jobMeta(again.json.id));
  await redis.expire(idemKey, 3600);
  const retries = await Promise.all(
    Array.from({ length: 8 }, () =>
      http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE, headers }),
    ),
  );
  expect(retries.every((r) => r.status === 202 || r.status === 409)).toBe(true);
  const started = new Set(retries.filter((r) => r.status === 202).map((r) => r.json.id as string));
  expect(started.size).toBe(1);
  expect(started.has(again.json.id)).toBe(false);
});
