// The job routes against the real api process and the real Redis: submission, routing onto the
// BullMQ queues, validation, idempotency, reading, listing and cancelling queued jobs.
import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  DEFAULT_LIMITS,
  QUEUE_NAMES,
  RedisJobEventStream,
  contract,
  redisKeys,
  type JobData,
  type QueueName,
} from '@relu-lstm/jobs';
import { REDIS_URL, http, startApi, type ApiProcess, openApiRedis, type ApiRedis } from './harness';

let api: ApiProcess;
let redis: Redis;
let queues: Record<QueueName, Queue<JobData>>;
let behind: ApiRedis;
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

const canonical = (): any => clone(CANONICAL_TRAIN_EXAMPLE);
const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  http(api.url, 'POST', path, { body, headers });
const get = (path: string) => http(api.url, 'GET', path);

async function counts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const q of QUEUE_NAMES) {
    const c = await queues[q].getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
    out[q] = Object.values(c).reduce((a, b) => a + b, 0);
  }
  return out;
}

beforeAll(async () => {
  api = await startApi({ BODY_LIMIT: '64kb' });
  behind = openApiRedis(api.prefix, REDIS_URL);
  ({ redis, queues } = behind);
});

afterAll(async () => {
  const code = await api?.stop();
  await behind?.close();
  expect(code).toBe(0); // SIGTERM: a clean shutdown
});

describe('POST /v1/jobs/train', () => {
  test('the canonical example is queued on the any queue with its validated payload', async () => {
    const r = await post('/v1/jobs/train', CANONICAL_TRAIN_EXAMPLE);
    expect(r.status).toBe(202);
    const { id } = r.json;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.json).toEqual({
      id,
      state: 'queued',
      links: { self: `/v1/jobs/${id}`, events: `/v1/jobs/${id}/events`, artifacts: `/v1/jobs/${id}/artifacts` },
    });

    const job = await queues.any.getJob(id);
    expect(job).toBeDefined();
    expect(job!.name).toBe('train');
    expect(job!.data).toEqual({
      type: 'train',
      tenant: 'default',
      limits: DEFAULT_LIMITS,
      payload: contract.TrainPayload.parse(CANONICAL_TRAIN_EXAMPLE),
    });
    expect(job!.opts.attempts).toBe(3);
    expect(await queues.gpu.getJob(id)).toBeUndefined();

    const keys = redisKeys(api.prefix);
    expect(JSON.parse((await redis.get(keys.jobMeta(id)))!)).toMatchObject({
      id,
      type: 'train',
      queue: 'any',
      device: 'any',
      tenant: 'default',
    });
    const events = await new RedisJobEventStream(redis, keys).read(id);
    expect(events.map((e) => e.event)).toEqual([expect.objectContaining({ type: 'state', state: 'queued' })]);

    const view = await get(`/v1/jobs/${id}`);
    expect(view.status).toBe(200);
    expect(view.json).toMatchObject({
      id,
      type: 'train',
      state: 'queued',
      queue: 'any',
      device: 'any',
      attempts: 0,
      maxAttempts: 3,
      cancelRequested: false,
      progress: null,
      result: null,
      error: null,
    });
  });

  test.each([['gpu'], ['cpu']] as const)('device %s goes to the %s queue', async (device) => {
    const r = await post('/v1/jobs/train', { ...canonical(), device });
    expect(r.status).toBe(202);
    expect((await queues[device].getJob(r.json.id))?.data.payload).toMatchObject({ device });
    expect(await queues.any.getJob(r.json.id)).toBeUndefined();
  });

  test('a bad payload gets 400 naming each field, and nothing is queued', async () => {
    const before = await counts();
    const body = canonical();
    body.model.hiddenSize = -3;
    body.training.optimizer = 'adagrad';
    body.training.attempts = 10;
    delete body.training.epochs;
    const r = await post('/v1/jobs/train', body);
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('invalid_request');
    const byPath = Object.fromEntries(r.json.error.issues.map((i: { path: string }) => [i.path, i]));
    expect(byPath['model.hiddenSize']).toMatchObject({ expected: '>= 1', received: '-3' });
    expect(byPath['training.optimizer']).toMatchObject({ received: '"adagrad"' });
    expect(byPath['training.optimizer'].expected).toContain('"adam"');
    expect(byPath['training.attempts']).toMatchObject({ code: 'unrecognized_keys' });
    expect(byPath['training.epochs']).toMatchObject({ expected: 'number', received: 'undefined (missing)' });
    expect(r.text).not.toMatch(/at .*\.js:\d+/); // no stack trace
    expect(await counts()).toEqual(before);
  });

  test('cross-field and shape errors name the field too', async () => {
    const body = canonical();
    body.model = { inputSize: 2, hiddenSize: 4, outputSize: 1, head: 'lastStep' };
    body.data = { inline: { x: [[[1, 2], [3]]], y: [[1]] } };
    const r = await post('/v1/jobs/train', body);
    expect(r.status).toBe(400);
    expect(r.json.error.issues).toEqual([
      expect.objectContaining({ path: 'data.inline.x[0][1]', expected: 'an array of length 2', received: 'length 1' }),
    ]);
  });

  test('invalid JSON is 400, a non-JSON body 415, an oversized body 413; nothing is queued', async () => {
    const before = await counts();
    const bad = await http(api.url, 'POST', '/v1/jobs/train', {
      raw: '{"model":',
      headers: { 'content-type': 'application/json' },
    });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe('invalid_json');
    const text = await http(api.url, 'POST', '/v1/jobs/train', {
      raw: 'model=1',
      headers: { 'content-type': 'text/plain' },
    });
    expect(text.status).toBe(415);
    const big = canonical();
    big.model = { inputSize: 1, hiddenSize: 4, outputSize: 1 };
    big.data = {
      inline: { x: Array.from({ length: 2000 }, () => Array.from({ length: 10 }, () => [Math.random()])), y: [] },
    };
    const tooLarge = await post('/v1/jobs/train', big);
    expect(tooLarge.status).toBe(413);
    expect(tooLarge.json.error.code).toBe('payload_too_large');
    expect(await counts()).toEqual(before);
  });

  test('a missing dataset or earlier job is a 400 on its field', async () => {
    const body = canonical();
    body.data = { datasetId: randomUUID() };
    const r = await post('/v1/jobs/train', body);
    expect(r.status).toBe(400);
    expect(r.json.error.issues[0]).toMatchObject({ path: 'data.datasetId', code: 'not_found' });
    const from = await post('/v1/jobs/train', { ...canonical(), fromJob: randomUUID() });
    expect(from.status).toBe(400);
    expect(from.json.error.issues[0]).toMatchObject({ path: 'fromJob', code: 'not_found' });
    const inf = await post('/v1/jobs/infer', { modelJobId: randomUUID(), inputs: [[[0.1]]] });
    expect(inf.status).toBe(400);
    expect(inf.json.error.issues[0]).toMatchObject({ path: 'modelJobId', code: 'not_found' });
  });
});

describe('Idempotency-Key', () => {
  test('a repeat returns the same job; another body with the same key is 422', async () => {
    const key = `k-${randomUUID()}`;
    const before = await counts();
    const a = await post('/v1/jobs/train', CANONICAL_TRAIN_EXAMPLE, { 'Idempotency-Key': key });
    // Same content, keys in another order: still the same request.
    const reordered = {
      device: 'any',
      training: CANONICAL_TRAIN_EXAMPLE.training,
      data: CANONICAL_TRAIN_EXAMPLE.data,
      model: CANONICAL_TRAIN_EXAMPLE.model,
    };
    const b = await post('/v1/jobs/train', reordered, { 'Idempotency-Key': key });
    expect(a.status).toBe(202);
    expect(b.status).toBe(202);
    expect(b.json.id).toBe(a.json.id);
    expect(b.headers['idempotent-replayed']).toBe('true');
    expect(a.headers['idempotent-replayed']).toBeUndefined();
    expect((await counts()).any).toBe(before.any + 1);

    const other = await post('/v1/jobs/train', { ...canonical(), device: 'cpu' }, { 'Idempotency-Key': key });
    expect(other.status).toBe(422);
    expect(other.json.error.code).toBe('idempotency_key_reused');
    const infer = await post(
      '/v1/jobs/infer',
      { model: { config: { inputSize: 1, hiddenSize: 1, outputSize: 1 }, stateDict: {} }, inputs: [[[1]]] },
      { 'Idempotency-Key': key },
    );
    expect(infer.status).toBe(422);

    const fresh = await post('/v1/jobs/train', CANONICAL_TRAIN_EXAMPLE, { 'Idempotency-Key': `k-${randomUUID()}` });
    expect(fresh.json.id).not.toBe(a.json.id);
  });

  test('concurrent repeats create one job', async () => {
    const key = `k-${randomUUID()}`;
    const rs = await Promise.all(
      Array.from({ length: 5 }, () => post('/v1/jobs/train', CANONICAL_TRAIN_EXAMPLE, { 'Idempotency-Key': key })),
    );
    const ids = new Set(rs.filter((r) => r.status === 202).map((r) => r.json.id));
    expect(ids.size).toBe(1);
    for (const r of rs) expect([202, 409]).toContain(r.status);
  });
});

describe('GET /v1/jobs/:id', () => {
  test('unknown or malformed ids are 404', async () => {
    expect((await get(`/v1/jobs/${randomUUID()}`)).status).toBe(404);
    const weird = await get('/v1/jobs/..%2F..%2Fetc');
    expect(weird.status).toBe(404);
    expect(weird.json.error.code).toBe('not_found');
  });
});

describe('GET /v1/jobs', () => {
  test('pages newest first with a cursor, and filters by state', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await post('/v1/jobs/train', { ...canonical(), device: 'cpu' })).json.id);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r: Awaited<ReturnType<typeof get>> = await get(`/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(r.status).toBe(200);
      expect(r.json.items.length).toBeLessThanOrEqual(2);
      seen.push(...r.json.items.map((j: { id: string }) => j.id));
      cursor = r.json.nextCursor;
      pages++;
    } while (cursor && pages < 50);
    expect(new Set(seen).size).toBe(seen.length);
    // The five just made are the newest, newest first.
    expect(seen.slice(0, 5)).toEqual([...ids].reverse());
    const created = await Promise.all(seen.map(async (id) => (await get(`/v1/jobs/${id}`)).json.createdAt as number));
    expect([...created].sort((a, b) => b - a)).toEqual(created);

    await http(api.url, 'DELETE', `/v1/jobs/${ids[2]}`);
    const cancelled = await get('/v1/jobs?state=cancelled&limit=100');
    expect(cancelled.json.items.map((j: { id: string }) => j.id)).toEqual([ids[2]]);

    const bad = await get('/v1/jobs?state=done&limit=1000');
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['limit', 'state']);
    expect((await get('/v1/jobs?cursor=nonsense')).status).toBe(400);
  });
});

describe('DELETE /v1/jobs/:id', () => {
  test('a queued job is removed from its queue and ends cancelled', async () => {
    const { id } = (await post('/v1/jobs/train', CANONICAL_TRAIN_EXAMPLE)).json;
    const r = await http(api.url, 'DELETE', `/v1/jobs/${id}`);
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ id, state: 'cancelled', cancelRequested: false });
    expect(await queues.any.getJob(id)).toBeUndefined();
    const view = await get(`/v1/jobs/${id}`);
    expect(view.json).toMatchObject({ state: 'cancelled', error: { code: 'cancelled' } });
    const keys = redisKeys(api.prefix);
    expect(await redis.exists(keys.cancel(id))).toBe(1);
    const events = await new RedisJobEventStream(redis, keys).read(id);
    expect(events.map((e) => e.event.type === 'state' && e.event.state)).toEqual(['queued', 'cancelled']);
    const again = await http(api.url, 'DELETE', `/v1/jobs/${id}`);
    expect(again.status).toBe(409);
    expect(again.json.error.code).toBe('not_cancellable');
    expect((await http(api.url, 'DELETE', `/v1/jobs/${randomUUID()}`)).status).toBe(404);
  });
});
