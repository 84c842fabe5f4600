// Integration test of the per-job event stream against the real Redis (REDIS_URL or 127.0.0.1:6379).
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisJobEventStream, redisKeys, isTerminalEvent, type JobEvent, type StoredEvent } from '@relu-lstm/jobs';

const prefix = `test-${randomUUID()}`;
const keys = redisKeys(prefix);
let redis: Redis;
let stream: RedisJobEventStream;

const metric = (step: number): JobEvent => ({
  type: 'metric',
  at: Date.now(),
  epoch: 0,
  step,
  loss: 1 / step,
  valLoss: null,
  gradNorm: 0.5,
  samplesPerSec: 100,
  elapsedMs: step,
});

beforeAll(() => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  stream = new RedisJobEventStream(redis, keys, 1000);
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
});

test('append, read from the start and after an id, last', async () => {
  const job = randomUUID();
  const ids: string[] = [];
  ids.push(await stream.append(job, { type: 'state', at: Date.now(), state: 'queued' }));
  for (let s = 1; s <= 3; s++) ids.push(await stream.append(job, metric(s)));
  const all = await stream.read(job);
  expect(all.map((e) => e.id)).toEqual(ids);
  expect(all[0].event).toMatchObject({ type: 'state', state: 'queued' });
  expect(all[3].event).toMatchObject({ type: 'metric', step: 3 });
  expect((await stream.read(job, { after: ids[1] })).map((e) => e.id)).toEqual(ids.slice(2));
  expect((await stream.read(job, { after: ids[1], count: 1 })).map((e) => e.id)).toEqual([ids[2]]);
  expect((await stream.last(job, 2)).map((e) => e.id)).toEqual([ids[3], ids[2]]);
  expect(await stream.read(randomUUID())).toEqual([]);
});

test('events are validated on append; foreign entries read as warnings', async () => {
  const job = randomUUID();
  await expect(stream.append(job, { type: 'metric', at: 1 } as unknown as JobEvent)).rejects.toThrow();
  await redis.xadd(keys.events(job), '*', 'event', '{not json');
  const [e] = await stream.read(job);
  expect(e.event).toMatchObject({ type: 'log', level: 'warning', code: 'invalid_event' });
});

test('follow replays, then waits for new entries, and can be stopped', async () => {
  const job = randomUUID();
  await stream.append(job, { type: 'state', at: Date.now(), state: 'queued' });
  await stream.append(job, metric(1));
  const seen: StoredEvent[] = [];
  let empties = 0;
  const writer = (async () => {
    await new Promise((r) => setTimeout(r, 300));
    await stream.append(job, metric(2));
    await stream.append(job, { type: 'state', at: Date.now(), state: 'completed' });
  })();
  for await (const batch of stream.follow(job, { blockMs: 100 })) {
    if (batch.length === 0) empties++;
    seen.push(...batch);
    if (seen.some((e) => isTerminalEvent(e.event))) break;
  }
  await writer;
  expect(seen.map((e) => e.event.type)).toEqual(['state', 'metric', 'metric', 'state']);
  expect(empties).toBeGreaterThan(0);
  // Resume after the second entry, as an SSE client with Last-Event-ID would.
  const resumed: StoredEvent[] = [];
  for await (const batch of stream.follow(job, { after: seen[1].id, blockMs: 50 })) {
    resumed.push(...batch);
    if (resumed.length >= 2) break;
  }
  expect(resumed.map((e) => e.id)).toEqual([seen[2].id, seen[3].id]);
});

test('aborting interrupts a blocked read at once and closes its connection', async () => {
  // Counts only this test's own named connections: other suites share the Redis server.
  const name = `es-abort-${randomUUID()}`;
  const parent = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    connectionName: name,
    maxRetriesPerRequest: 1,
  });
  const s = new RedisJobEventStream(parent, keys, 1000);
  const connections = async () =>
    ((await redis.client('LIST')) as string).split('\n').filter((l) => l.includes(` name=${name} `)).length;
  try {
    await parent.ping();
    const before = await connections();
    const ac = new AbortController();
    const started = Date.now();
    setTimeout(() => ac.abort(), 200);
    const batches: StoredEvent[][] = [];
    for await (const b of s.follow(randomUUID(), { blockMs: 10_000, signal: ac.signal })) batches.push(b);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(batches).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(before).toBe(1);
    expect(await connections()).toBe(before);
  } finally {
    s.close();
    await parent.quit();
  }
});

test('idleBlockingConnections: a follow that ends between reads leaves its connection to the next; an aborted read closes it', async () => {
  const name = `es-idle-${randomUUID()}`;
  const parent = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    connectionName: name,
    maxRetriesPerRequest: 1,
  });
  const s = new RedisJobEventStream(parent, keys, 1000, { idleBlockingConnections: 1 });
  const connections = async () =>
    ((await redis.client('LIST')) as string)
      .split('\n')
      .filter((l) => l.includes(` name=${name} `))
      .map((l) => /\bid=(\d+)/.exec(l)![1])
      .sort();
  const followToEnd = async () => {
    const job = randomUUID();
    setTimeout(() => void s.append(job, { type: 'state', at: Date.now(), state: 'completed' }), 150);
    for await (const batch of s.follow(job, { blockMs: 5000 })) if (batch.some((e) => isTerminalEvent(e.event))) break;
  };
  try {
    await followToEnd();
    const first = await connections();
    expect(first).toHaveLength(2); // the shared one and the idle blocking one
    await followToEnd();
    expect(await connections()).toEqual(first); // the same blocking connection served again

    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    for await (const batch of s.follow(randomUUID(), { blockMs: 10_000, signal: ac.signal })) expect(batch).toEqual([]);
    await new Promise((r) => setTimeout(r, 100));
    expect(await connections()).toHaveLength(1); // disconnected to interrupt the read, not kept

    await followToEnd();
    expect(await connections()).toHaveLength(2);
    s.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(await connections()).toHaveLength(1);
  } finally {
    s.close();
    await parent.quit();
  }
});

test('streams are capped', async () => {
  const small = new RedisJobEventStream(redis, keys, 10);
  const job = randomUUID();
  for (let s = 1; s <= 300; s++) await small.append(job, metric(s));
  expect(await redis.xlen(keys.events(job))).toBeLessThan(300);
});

test('bad ids are refused', async () => {
  await expect(stream.read(randomUUID(), { after: '$' })).rejects.toThrow(/stream id/);
});

test('follow works over a fail-fast connection (enableOfflineQueue: false), as the api uses', async () => {
  const strict = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: true,
  });
  await strict.connect();
  try {
    const s = new RedisJobEventStream(strict, keys);
    const job = randomUUID();
    await s.append(job, { type: 'state', at: Date.now(), state: 'queued' });
    setTimeout(() => void s.append(job, { type: 'state', at: Date.now(), state: 'cancelled' }), 100);
    const seen: StoredEvent[] = [];
    for await (const batch of s.follow(job, { blockMs: 1000 })) {
      seen.push(...batch);
      if (seen.some((e) => isTerminalEvent(e.event))) break;
    }
    expect(seen.map((e) => e.event.type === 'state' && e.event.state)).toEqual(['queued', 'cancelled']);
  } finally {
    await strict.quit();
  }
});
