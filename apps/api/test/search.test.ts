// Names, tags and priorities of jobs, and GET /v1/jobs's search, against the real api process and
// Redis: two tenants, jobs on the gpu queue (no worker here: they stay queued), the filters alone and
// together, paging through the cursor, bad input naming its field, and another tenant's jobs unseen.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, redisKeys } from '@relu-lstm/jobs';
import { sha256 } from '../src/http/api-keys';
import { REDIS_URL, dropPrefix, http, startApi, type ApiProcess } from './harness';

const KEY = { alpha: `ka-${randomUUID()}`, beta: `kb-${randomUUID()}` };
const hex = (k: string) => sha256(k).toString('hex');
const INFER = {
  model: {
    config: { inputSize: 1, hiddenSize: 1, outputSize: 1 },
    stateDict: {
      weight_ih_l0: [[0.1], [0.2], [0.3], [0.4]],
      weight_hh_l0: [[0.1], [0.2], [0.3], [0.4]],
      'head.weight': [[1]],
      'head.bias': [0],
    },
  },
  inputs: [[[0.5]]],
  device: 'gpu',
};

let api: ApiProcess;
let redis: Redis;
const ids: Record<string, string> = {};

const as = (tenant: keyof typeof KEY) => ({ authorization: `Bearer ${KEY[tenant]}` });
const get = (path: string, tenant: keyof typeof KEY = 'alpha') => http(api.url, 'GET', path, { headers: as(tenant) });

async function submit(label: string, type: 'train' | 'infer', options: object): Promise<void> {
  const body = type === 'train' ? { ...CANONICAL_TRAIN_EXAMPLE, device: 'gpu', ...options } : { ...INFER, ...options };
  const r = await http(api.url, 'POST', `/v1/jobs/${type}`, { body, headers: as('alpha') });
  expect(r.status).toBe(202);
  ids[label] = r.json.id;
}

/** Every page of a listing, following the cursor; the ids in order. */
async function allPages(query: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 20; pages++) {
    const r = await get(`/v1/jobs?${query}&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    expect(r.status).toBe(200);
    out.push(...r.json.items.map((j: { id: string }) => j.id));
    cursor = r.json.nextCursor;
    if (!cursor) return out;
  }
  throw new Error('more than 20 pages');
}

const named = (...labels: string[]) => labels.map((l) => ids[l]);

beforeAll(async () => {
  api = await startApi({ API_KEYS: `alpha:${hex(KEY.alpha)},beta:${hex(KEY.beta)}` });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  // Oldest first; the listing is newest first.
  await submit('t1', 'train', { name: 'sweep', tags: { project: 'sine', lr: '0.01' } });
  await submit('t2', 'train', { name: 'sweep', tags: { project: 'sine', lr: '0.1' }, priority: 1 });
  await submit('i1', 'infer', { tags: { project: 'sine' } });
  await submit('t3', 'train', { name: 'other', tags: { project: 'adding' } });
  await submit('i2', 'infer', {});
  await submit('t4', 'train', { name: 'sweep', tags: { project: 'sine', lr: '0.01' } });
}, 60_000);

afterAll(async () => {
  const code = await api?.stop();
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
  expect(code).toBe(0);
});

test("a job's record shows its name, tags and priority (5 when not given)", async () => {
  expect((await get(`/v1/jobs/${ids.t2}`)).json).toMatchObject({
    name: 'sweep',
    tags: { project: 'sine', lr: '0.1' },
    priority: 1,
  });
  const plain = (await get(`/v1/jobs/${ids.i2}`)).json;
  expect(plain.priority).toBe(5);
  expect(plain.name).toBeUndefined();
  expect(plain.tags).toBeUndefined();
});

test('each filter alone, several together (all must match), paged through the cursor, newest first', async () => {
  expect(await allPages('')).toEqual(named('t4', 'i2', 't3', 'i1', 't2', 't1'));
  expect(await allPages('tag=project:sine')).toEqual(named('t4', 'i1', 't2', 't1'));
  expect(await allPages('name=sweep')).toEqual(named('t4', 't2', 't1'));
  expect(await allPages('type=infer')).toEqual(named('i2', 'i1'));
  expect(await allPages('tag=project:sine&type=train')).toEqual(named('t4', 't2', 't1'));
  expect(await allPages('tag=project:sine&tag=lr:0.01')).toEqual(named('t4', 't1'));
  expect(await allPages('name=sweep&tag=lr:0.1&type=train&state=queued')).toEqual(named('t2'));
  expect(await allPages('name=sweep&state=completed')).toEqual([]);
  expect(await allPages('tag=project:none')).toEqual([]);
  expect(await allPages('name=nobody&type=train')).toEqual([]);
});

test('since: by creation time, as milliseconds or an ISO date', async () => {
  const t3 = (await get(`/v1/jobs/${ids.t3}`)).json.createdAt as number;
  const since = await allPages(`since=${t3}`);
  expect(since.slice(0, 3)).toEqual(named('t4', 'i2', 't3'));
  expect(since).not.toContain(ids.t1); // three submissions (round trips) older
  const sinceSine = await allPages(`since=${t3}&tag=project:sine`);
  expect(sinceSine[0]).toBe(ids.t4);
  expect(sinceSine).not.toContain(ids.t1);
  const fromIso = await allPages(`since=${encodeURIComponent(new Date(t3).toISOString())}&name=sweep`);
  expect(fromIso[0]).toBe(ids.t4);
  expect(fromIso).not.toContain(ids.t1);
  expect(await allPages(`since=${Date.now() + 60_000}`)).toEqual([]);
});

test('another tenant sees none of them, whatever the filter', async () => {
  for (const q of ['', 'tag=project:sine', 'name=sweep', 'type=train']) {
    const r = await get(`/v1/jobs?${q}`, 'beta');
    expect(r.status).toBe(200);
    expect(r.json.items).toEqual([]);
  }
});

test('bad filters and bad options are 400 naming the field; a refused submission queues nothing', async () => {
  for (const [q, path] of [
    ['tag=novalue', 'tag'],
    ['tag=a%3Ab%0A', 'tag'],
    ['since=yesterday', 'since'],
    ['type=fit', 'type'],
    [`name=${'x'.repeat(200)}`, 'name'],
  ]) {
    const r = await get(`/v1/jobs?${q}`);
    expect(r.status).toBe(400);
    expect(r.json.error.issues.map((i: { path: string }) => i.path)).toContain(path);
  }
  const keys = redisKeys(api.prefix);
  const before = await redis.zcard(keys.jobIndex('alpha'));
  for (const [options, path] of [
    [{ priority: 0 }, 'priority'],
    [{ priority: 'high' }, 'priority'],
    [{ tags: { 'bad key': 'v' } }, 'tags.bad key'],
    [{ tags: 'project:sine' }, 'tags'],
    [{ name: 42 }, 'name'],
  ] as const) {
    const r = await http(api.url, 'POST', '/v1/jobs/train', {
      body: { ...CANONICAL_TRAIN_EXAMPLE, device: 'gpu', ...options },
      headers: as('alpha'),
    });
    expect(r.status).toBe(400);
    expect(r.json.error.issues[0].path).toBe(path);
  }
  expect(await redis.zcard(keys.jobIndex('alpha'))).toBe(before);
});

test('an Idempotency-Key covers the options too: the same ones replay the job, other ones are 422', async () => {
  const send = (options: object) =>
    http(api.url, 'POST', '/v1/jobs/infer', {
      body: { ...INFER, ...options },
      headers: { ...as('beta'), 'idempotency-key': 'idem-options' },
    });
  const first = await send({ tags: { run: 'a' }, priority: 3 });
  expect(first.status).toBe(202);
  const again = await send({ priority: 3, tags: { run: 'a' } });
  expect([again.status, again.json.id, again.headers['idempotent-replayed']]).toEqual([202, first.json.id, 'true']);
  expect((await send({ tags: { run: 'b' }, priority: 3 })).status).toBe(422);
  expect((await send({ tags: { run: 'a' } })).status).toBe(422);
});

test('the OpenAPI document lists the filters and the submit options', async () => {
  const doc = (await get('/docs/openapi.json')).json;
  const list = doc.paths['/v1/jobs'].get.parameters.map((p: { name: string }) => p.name);
  expect(list).toEqual(expect.arrayContaining(['state', 'type', 'name', 'tag', 'since', 'limit', 'cursor']));
  for (const schema of ['TrainPayload', 'InferPayload'])
    expect(Object.keys(doc.components.schemas[schema].properties)).toEqual(
      expect.arrayContaining(['name', 'tags', 'priority']),
    );
});
