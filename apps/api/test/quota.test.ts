// The per-tenant quotas, against the real api process, real Redis and a real BullMQ worker: queued +
// running jobs (MAX_QUEUED_JOBS_PER_TENANT): 429 naming the quota at the limit with nothing queued,
// per tenant, and no drift when jobs complete, fail or are cancelled; and open event streams
// (MAX_STREAMS_PER_TENANT), so one tenant cannot take every stream slot.
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, redisKeys, type JobData } from '@relu-lstm/jobs';
import { sha256 } from '../src/http/api-keys';
import { REDIS_URL, dropPrefix, http, sleep, startApi, type ApiProcess } from './harness';

const QUOTA = 3;
const STREAMS = 2;
const KEY = { alpha: `ka-${randomUUID()}`, beta: `kb-${randomUUID()}` };
const hex = (k: string) => sha256(k).toString('hex');

let api: ApiProcess;
let redis: Redis;
let cpu: Queue<JobData>;
let gpu: Queue<JobData>;

/** A train job on `device`: gpu jobs stay queued (no GPU worker here), cpu ones go to the test's worker. */
const submit = (tenant: 'alpha' | 'beta', device: 'gpu' | 'cpu' = 'gpu') =>
  http(api.url, 'POST', '/v1/jobs/train', {
    body: { ...CANONICAL_TRAIN_EXAMPLE, device },
    headers: { authorization: `Bearer ${KEY[tenant]}` },
  });
const cancel = (id: string) =>
  http(api.url, 'DELETE', `/v1/jobs/${id}`, { headers: { authorization: `Bearer ${KEY.alpha}` } });
const waiting = async () =>
  (await gpu.getJobCountByTypes('waiting', 'prioritized')) + (await cpu.getJobCountByTypes('waiting', 'prioritized'));

/** Submits until accepted (a freed place is seen within the 1 s recount period); returns the tries. */
async function submitUntilAccepted(device: 'gpu' | 'cpu' = 'gpu'): Promise<{ id: string; tries: number }> {
  for (let tries = 1; tries <= 20; tries++) {
    const r = await submit('alpha', device);
    if (r.status === 202) return { id: r.json.id, tries };
    expect(r.json.error.code).toBe('quota_exceeded');
    await sleep(250);
  }
  throw new Error('never accepted');
}

beforeAll(async () => {
  api = await startApi({
    API_KEYS: `alpha:${hex(KEY.alpha)},beta:${hex(KEY.beta)}`,
    MAX_QUEUED_JOBS_PER_TENANT: String(QUOTA),
    MAX_STREAMS_PER_TENANT: String(STREAMS),
    SSE_KEEPALIVE_MS: '200',
  });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  cpu = new Queue<JobData>('cpu', { connection: { url: REDIS_URL }, prefix: api.prefix });
  gpu = new Queue<JobData>('gpu', { connection: { url: REDIS_URL }, prefix: api.prefix });
});

afterAll(async () => {
  const code = await api?.stop();
  await cpu?.close();
  await gpu?.close();
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
  expect(code).toBe(0);
});

test('at the quota: 429 naming it, nothing queued; other tenants unaffected; a cancel frees a place at once', async () => {
  const ids: string[] = [];
  for (let i = 0; i < QUOTA; i++) {
    const r = await submit('alpha');
    expect(r.status).toBe(202);
    ids.push(r.json.id);
  }
  const before = await waiting();
  const refused = await submit('alpha');
  expect(refused.status).toBe(429);
  expect(refused.json.error).toEqual({
    code: 'quota_exceeded',
    message: `tenant alpha has ${QUOTA} queued or running jobs, the most MAX_QUEUED_JOBS_PER_TENANT allows; wait for one to end or cancel one`,
  });
  expect(await waiting()).toBe(before);
  expect(await redis.scard(redisKeys(api.prefix).liveJobs('alpha'))).toBe(QUOTA);

  expect((await submit('beta')).status).toBe(202); // the quota is per tenant

  expect((await cancel(ids[0])).json.state).toBe('cancelled');
  const next = await submit('alpha'); // no wait: the api itself released the place
  expect(next.status).toBe(202);
  expect((await submit('alpha')).status).toBe(429);
  for (const id of [...ids.slice(1), next.json.id]) await cancel(id);
});

test('jobs that complete or fail in a worker free their places; the count neither drifts up nor down', async () => {
  const keys = redisKeys(api.prefix);
  // Fill the quota with cpu jobs; a real BullMQ worker completes the first and fails the second for good.
  const ids: string[] = [];
  for (let i = 0; i < QUOTA; i++) ids.push((await submitUntilAccepted('cpu')).id);
  expect((await submit('alpha')).status).toBe(429);

  const outcome = new Map<string, 'completed' | 'failed'>([
    [ids[0], 'completed'],
    [ids[1], 'failed'],
  ]);
  let release = () => {};
  const held = new Promise<void>((r) => (release = r));
  const worker = new Worker<JobData>(
    'cpu',
    async (job: Job<JobData>) => {
      if (outcome.get(job.id!) === 'failed') throw new UnrecoverableError('boom');
      if (outcome.get(job.id!) === 'completed') return { done: true };
      await held; // the third stays running until the test ends
    },
    { connection: { url: REDIS_URL }, prefix: api.prefix, concurrency: 3 },
  );
  try {
    const ended = async () =>
      Promise.all(ids.slice(0, 2).map(async (id) => (await cpu.getJob(id))?.finishedOn !== undefined));
    for (let i = 0; i < 100 && (await ended()).includes(false); i++) await sleep(100);
    expect(await ended()).toEqual([true, true]);
    const views = await Promise.all(
      ids.map((id) => http(api.url, 'GET', `/v1/jobs/${id}`, { headers: { authorization: `Bearer ${KEY.alpha}` } })),
    );
    expect(views.map((v) => v.json.state)).toEqual(['completed', 'failed', 'running']);

    // Two places free (one running job left): exactly two more are accepted, then 429 again.
    const a = await submitUntilAccepted();
    const b = await submitUntilAccepted();
    expect(a.tries + b.tries).toBeLessThan(20);
    const over = await submit('alpha');
    expect([over.status, over.json.error.code]).toEqual([429, 'quota_exceeded']);
    await sleep(1100); // past the recount period: a recount finds nothing more to free
    expect((await submit('alpha')).status).toBe(429);
    expect((await redis.smembers(keys.liveJobs('alpha'))).sort()).toEqual([ids[2], a.id, b.id].sort());
  } finally {
    release();
    await worker.close();
  }
});

/** Opens an event stream and keeps it open; resolves with the status once the headers are in. */
function openStream(path: string, key: string): Promise<{ status: number; body: Promise<string>; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      new URL(path, api.url),
      { headers: { accept: 'text/event-stream', authorization: `Bearer ${key}` }, agent: false },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        const body = new Promise<string>((r) => {
          res.on('data', (c: string) => (text += c));
          res.on('end', () => r(text));
          res.on('close', () => r(text));
        });
        resolve({ status: res.statusCode ?? 0, body, close: () => req.destroy() });
      },
    );
    req.on('error', (e) => (req.destroyed ? undefined : reject(e)));
    req.end();
  });
}

test('event streams per tenant: past MAX_STREAMS_PER_TENANT 429, other tenants unaffected, a closed stream frees its slot', async () => {
  const alphaJob = (await submitUntilAccepted()).id;
  const betaJob = (await submit('beta')).json.id as string;
  const open = [];
  for (let i = 0; i < STREAMS; i++) open.push(await openStream(`/v1/jobs/${alphaJob}/events`, KEY.alpha));
  expect(open.map((o) => o.status)).toEqual(Array(STREAMS).fill(200));
  const refused = await openStream(`/v1/jobs/${alphaJob}/events`, KEY.alpha);
  expect([refused.status, JSON.parse(await refused.body).error]).toEqual([
    429,
    {
      code: 'quota_exceeded',
      message: `tenant alpha has ${STREAMS} event streams or waiting requests open, the most MAX_STREAMS_PER_TENANT allows; close one or retry later`,
    },
  ]);
  // infer?wait=true needs a slot as well, and is refused before anything is queued: a client that
  // retries the 429 must not run the job twice.
  const alphaJobs = () => redis.zcard(redisKeys(api.prefix).jobIndex('alpha'));
  const jobsBefore = await alphaJobs();
  const inferBody = {
    model: { config: { inputSize: 1, hiddenSize: 1, outputSize: 1 }, stateDict: {} },
    inputs: [[[1]]],
  };
  const waitRefused = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', {
    body: inferBody,
    headers: { authorization: `Bearer ${KEY.alpha}` },
  });
  expect([waitRefused.status, waitRefused.json.error.message]).toEqual([
    429,
    expect.stringContaining('event streams or waiting requests open'),
  ]);
  expect(await alphaJobs()).toBe(jobsBefore);
  const beta = await openStream(`/v1/jobs/${betaJob}/events`, KEY.beta);
  expect(beta.status).toBe(200);
  open[0].close();
  let again = 0;
  for (let i = 0; i < 30 && again !== 200; i++) {
    await sleep(100);
    const s = await openStream(`/v1/jobs/${alphaJob}/events`, KEY.alpha);
    again = s.status;
    if (again === 200) open.push(s);
  }
  expect(again).toBe(200);
  for (const o of [...open, beta]) o.close();
});
