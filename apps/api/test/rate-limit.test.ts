// Request rate limiting against two real api processes sharing one Redis: a token bucket per
// tenant (and per address without a valid key), 429 with Retry-After, shared across replicas.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { sha256 } from '../src/http/api-keys';
import { REDIS_URL, dropPrefix, http, sleep, startApi, type ApiProcess, type HttpResult } from './harness';

const RPS = 2;
const BURST = 6;
const KEY = { alpha: `ka-${randomUUID()}`, beta: `kb-${randomUUID()}` };
const hex = (k: string) => sha256(k).toString('hex');
const ENV = {
  API_KEYS: `alpha:${hex(KEY.alpha)},beta:${hex(KEY.beta)}`,
  RATE_LIMIT_RPS: String(RPS),
  RATE_LIMIT_BURST: String(BURST),
  RATE_LIMIT_ANON_RPS: '1',
  RATE_LIMIT_ANON_BURST: '3',
};

let api: ApiProcess;
let replica: ApiProcess;
let redis: Redis;
const as = (k: string) => ({ authorization: `Bearer ${k}` });
let lastBurstMs = 0;
/** n requests at once; `lastBurstMs` says how long they took (tokens refill meanwhile). */
async function burst(base: string, n: number, headers: Record<string, string>): Promise<HttpResult[]> {
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: n }, () => http(base, 'GET', '/v1/jobs?limit=1', { headers })));
  lastBurstMs = Date.now() - t0;
  return rs;
}
/** Most tokens that can have refilled in `ms`. */
const refill = (ms: number) => Math.ceil((RPS * ms) / 1000);
const statuses = (rs: HttpResult[]) => rs.map((r) => r.status);
const count = (rs: HttpResult[], s: number) => rs.filter((r) => r.status === s).length;

beforeAll(async () => {
  api = await startApi(ENV);
  replica = await startApi({ ...ENV, QUEUE_PREFIX: api.prefix });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  const codes = [await api?.stop(), await replica?.stop()];
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
  expect(codes).toEqual([0, 0]);
});

test('a tenant gets its burst, then 429 with Retry-After naming the limit; another tenant is unaffected; the bucket refills', async () => {
  const rs = await burst(api.url, 20, as(KEY.alpha));
  const ok = count(rs, 200);
  // The burst, plus what refilled while the 20 requests were in flight (RPS per second).
  expect(ok).toBeGreaterThanOrEqual(BURST);
  expect(ok).toBeLessThanOrEqual(BURST + refill(lastBurstMs));
  expect(count(rs, 200) + count(rs, 429)).toBe(20);
  const refused = rs.find((r) => r.status === 429)!;
  expect(refused.json.error).toEqual({
    code: 'rate_limited',
    message: `rate limit of ${RPS} requests/s (burst ${BURST}) for tenant alpha exceeded; retry after 1 s`,
  });
  expect(refused.headers['retry-after']).toBe('1');
  expect(refused.headers['x-content-type-options']).toBe('nosniff');

  expect(statuses(await burst(api.url, 3, as(KEY.beta)))).toEqual([200, 200, 200]);
  expect((await http(api.url, 'GET', '/health')).status).toBe(200); // never limited

  await sleep(1000 * (Number(refused.headers['retry-after']) + 0.2));
  expect((await http(api.url, 'GET', '/v1/jobs', { headers: as(KEY.alpha) })).status).toBe(200);
});

test('the bucket is shared by every api process on the same Redis', async () => {
  await sleep((BURST / RPS) * 1000 + 200); // alpha's bucket full again
  const t0 = Date.now();
  const first = await burst(api.url, BURST, as(KEY.alpha));
  expect(count(first, 200)).toBe(BURST);
  const onReplica = await burst(replica.url, 8, as(KEY.alpha));
  // Alone, the replica would have served all 8 (its burst is 6 + refill); sharing the bucket it
  // serves only what refilled since the first burst began.
  expect(count(onReplica, 200)).toBeLessThanOrEqual(refill(Date.now() - t0));
  expect(count(onReplica, 429)).toBeGreaterThanOrEqual(8 - refill(Date.now() - t0));
  expect(count(onReplica, 429)).toBeGreaterThan(0);
});

test('requests without a valid key are limited per address: guessing keys hits 429', async () => {
  const t0 = Date.now();
  const guesses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => http(api.url, 'GET', '/v1/jobs', { headers: as(`guess-${i}`) })),
  );
  lastBurstMs = Date.now() - t0;
  expect(count(guesses, 401)).toBeGreaterThanOrEqual(3);
  expect(count(guesses, 401)).toBeLessThanOrEqual(3 + Math.ceil(lastBurstMs / 1000) + 1);
  expect(count(guesses, 429)).toBe(10 - count(guesses, 401));
  const refused = guesses.find((r) => r.status === 429)!;
  expect(refused.json.error.message).toBe(
    'rate limit of 1 requests/s (burst 3) for this client address (no valid key) exceeded; retry after 1 s',
  );
  // A valid key is charged to its tenant, not to the address.
  expect((await http(api.url, 'GET', '/v1/jobs', { headers: as(KEY.beta) })).status).toBe(200);
});

test('RATE_LIMIT_RPS=0 turns the limit off', async () => {
  const open = await startApi({ ...ENV, RATE_LIMIT_RPS: '0' });
  try {
    expect(count(await burst(open.url, 30, as(KEY.alpha)), 200)).toBe(30);
  } finally {
    await open.stop();
    await dropPrefix(redis, open.prefix);
  }
});
