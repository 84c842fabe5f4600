/**
 * QueueClient against the real Redis (REDIS_URL, default 127.0.0.1:6379), every test under a prefix
 * of its own that is removed afterwards. Checks what lands where: the BullMQ job on the queue of its
 * device with the validated payload, the job meta, the listing index and the `queued` event; that an
 * invalid payload writes nothing; and that close() leaves no connection open.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { JobFailedError, PayloadValidationError, QueueClient, WaitTimeoutError } from '@relu-lstm/client';
import {
  CANONICAL_TRAIN_EXAMPLE,
  JobIdConflictError,
  LiveQuotaFullError,
  RedisJobEventStream,
  contract,
  planJob,
  produceJob,
  redisKeys,
  type JobData,
  type TrainResult,
} from '@relu-lstm/jobs';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let prefix: string;
let admin: Redis;
let clients: QueueClient[];
let queues: Queue[];

function newClient(extra: { tenant?: string } = {}): QueueClient {
  const c = new QueueClient({
    connection: { ...redisOptions(), connectionName: `qc-${prefix}` },
    prefix,
    tenant: 'default',
    ...extra,
  });
  clients.push(c);
  return c;
}

function redisOptions() {
  const u = new URL(REDIS_URL);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    password: u.password || undefined,
    db: Number(u.pathname.slice(1) || 0),
  };
}

function queue(name: string): Queue<JobData> {
  const q = new Queue<JobData>(name, { connection: redisOptions(), prefix });
  queues.push(q);
  return q;
}

async function keysUnder(p: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 1000);
    out.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return out.sort();
}

async function connectionsNamed(name: string): Promise<number> {
  const list = (await admin.client('LIST')) as string;
  return list.split('\n').filter((l) => l.includes(` name=${name} `)).length;
}

beforeEach(() => {
  prefix = `test-qc-${randomUUID()}`;
  admin = new Redis(REDIS_URL);
  clients = [];
  queues = [];
});

afterEach(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const q of queues) await q.obliterate({ force: true }).catch(() => undefined);
  await Promise.allSettled(queues.map((q) => q.close()));
  const left = await keysUnder(prefix);
  if (left.length) await admin.del(...left);
  await admin.quit();
});

test('a train job lands on the queue of its device with the validated payload, meta, index and queued event', async () => {
  const qc = newClient();
  const payload = { ...CANONICAL_TRAIN_EXAMPLE, device: 'gpu' as const };
  const job = await qc.submitTrain(payload);
  expect(job).toMatchObject({ type: 'train', queue: 'gpu', state: 'queued' });
  expect(job.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

  const bull = await queue('gpu').getJob(job.id);
  expect(bull?.name).toBe('train');
  expect(bull?.data).toEqual({
    type: 'train',
    tenant: 'default',
    limits: contract.limits,
    payload: contract.TrainPayload.parse(payload),
  });
  expect(bull?.data.payload).toMatchObject({ model: { bias: true, activation: 'relu' }, training: { loss: 'mse' } }); // defaults filled
  expect(bull?.opts).toMatchObject({ attempts: 3, backoff: { type: 'exponential', delay: 5000 } });
  // Every job has a BullMQ priority: its fair-share turn and its priority (producer.ts FAIR_SHARE).
  expect(await bull?.getState()).toBe('prioritized');
  expect(bull?.opts.priority).toBe(job.bullPriority);
  for (const other of ['cpu', 'any']) expect(await queue(other).count()).toBe(0);

  const keys = redisKeys(prefix);
  expect(JSON.parse((await admin.get(keys.jobMeta(job.id)))!)).toMatchObject({
    id: job.id,
    type: 'train',
    queue: 'gpu',
    device: 'gpu',
    tenant: 'default',
  });
  expect(await admin.zrange(keys.jobIndex('default'), 0, '-1')).toEqual([job.id]);
  const events = await new RedisJobEventStream(admin, keys).read(job.id);
  expect(events).toEqual([{ id: job.eventId, event: { type: 'state', at: expect.any(Number), state: 'queued' } }]);
});

test('routing: cpu and any; infer jobs; a tenant of its own; a chosen id used twice is refused', async () => {
  const qc = newClient({ tenant: 'team-a' });
  const train = await qc.submitTrain({ ...CANONICAL_TRAIN_EXAMPLE, device: 'cpu' });
  const infer = await qc.submitInfer({ modelJobId: train.id, inputs: [[[0.1], [0.2], [0.3]]] }); // device defaults to any
  expect([train.queue, infer.queue, infer.type]).toEqual(['cpu', 'any', 'infer']);
  const bull = await queue('any').getJob(infer.id);
  expect(bull?.data).toEqual({
    type: 'infer',
    tenant: 'team-a',
    limits: contract.limits,
    payload: { modelJobId: train.id, inputs: [[[0.1], [0.2], [0.3]]], device: 'any' },
  });
  expect(await admin.zrange(redisKeys(prefix).jobIndex('team-a'), 0, '-1')).toEqual(
    expect.arrayContaining([train.id, infer.id]),
  );

  const id = randomUUID();
  await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE, { id });
  await expect(qc.submitTrain({ ...CANONICAL_TRAIN_EXAMPLE, device: 'gpu' }, { id })).rejects.toBeInstanceOf(
    JobIdConflictError,
  );
  expect(await queue('gpu').count()).toBe(0);
  expect((await queue('any').getJob(id))?.data.payload.device).toBe('any'); // the first one is untouched
  // ...and so are its records: one `queued` event, one index entry (the conflict wrote nothing).
  expect(
    (await new RedisJobEventStream(admin, redisKeys(prefix)).read(id)).map(
      (e) => e.event.type === 'state' && e.event.state,
    ),
  ).toEqual(['queued']);
  expect((await admin.zrange(redisKeys(prefix).jobIndex('team-a'), 0, '-1')).filter((x) => x === id)).toEqual([id]);
});

test('produceJob with a live quota (the per-tenant set of the api): the place is taken with the records, a full set writes nothing, a failed add gives the place back', async () => {
  const keys = redisKeys(prefix);
  const live = { key: keys.liveJobs('team-q'), max: 2 };
  const deps = { redis: admin, keys, queue: (q: string) => queue(q) };
  const plan = () =>
    planJob('train', contract.TrainPayload.parse({ ...CANONICAL_TRAIN_EXAMPLE, device: 'cpu' }), {
      limits: contract.limits,
      tenant: 'team-q',
    });
  const a = plan();
  const b = plan();
  await produceJob(deps, a, live);
  await produceJob(deps, b, live);
  expect((await admin.smembers(live.key)).sort()).toEqual([a.id, b.id].sort());

  const c = plan();
  await expect(produceJob(deps, c, live)).rejects.toBeInstanceOf(LiveQuotaFullError);
  expect(await admin.exists(keys.jobMeta(c.id), keys.events(c.id))).toBe(0);
  expect(await admin.zscore(keys.jobIndex('team-q'), c.id)).toBeNull();
  expect(await queue('cpu').count()).toBe(2);

  await admin.srem(live.key, a.id);
  const failing = { ...deps, queue: () => ({ add: () => Promise.reject(new Error('queue down')) }) };
  await expect(produceJob(failing, c, live)).rejects.toThrow('queue down');
  expect((await admin.smembers(live.key)).sort()).toEqual([b.id]);
  expect(await admin.exists(keys.jobMeta(c.id), keys.events(c.id))).toBe(0);
  // Without a quota the set is not touched.
  await produceJob(deps, c);
  expect(await admin.smembers(live.key)).toEqual([b.id]);
});

test('an invalid payload is rejected naming its fields, and nothing is written', async () => {
  const qc = newClient();
  const bad = {
    ...CANONICAL_TRAIN_EXAMPLE,
    model: { ...CANONICAL_TRAIN_EXAMPLE.model, hiddenSize: -1 },
    device: 'tpu',
  };
  const err = (await qc.submitTrain(bad as never).catch((e: unknown) => e)) as PayloadValidationError;
  expect(err).toBeInstanceOf(PayloadValidationError);
  expect(err.fields.sort()).toEqual(['device', 'model.hiddenSize']);
  await expect(qc.submit('infer', { modelJobId: 'not-a-uuid', inputs: [[[1]]] })).rejects.toMatchObject({
    fields: ['modelJobId'],
  });
  expect(await keysUnder(prefix)).toEqual([]);
});

test('follow and waitForResult read the job stream (here written as a worker would)', async () => {
  const qc = newClient();
  const job = await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE);
  const stream = new RedisJobEventStream(admin, redisKeys(prefix));
  const result: TrainResult = {
    epochs: 3,
    steps: 24,
    finalLoss: 0.01,
    finalValLoss: null,
    samplesPerSec: 100,
    elapsedMs: 10,
    resumedFromEpoch: null,
    backend: 'cpu',
    gpu: false,
    artifacts: ['model.safetensors'],
  };
  const finish = async () => {
    await stream.append(job.id, { type: 'state', at: Date.now(), state: 'running', attempt: 1 });
    await stream.append(job.id, {
      type: 'metric',
      at: Date.now(),
      epoch: 0,
      step: 8,
      loss: 0.5,
      valLoss: null,
      gradNorm: 1,
      samplesPerSec: 10,
      elapsedMs: 5,
    });
    await stream.append(job.id, { type: 'state', at: Date.now(), state: 'completed', result });
  };
  setTimeout(() => void finish(), 50);
  await expect(qc.waitForResult(job.id, { timeoutMs: 5000 })).resolves.toEqual(result);
  const types: string[] = [];
  for await (const e of qc.follow(job.id)) types.push(e.event.type === 'state' ? e.event.state : e.event.type);
  expect(types).toEqual(['queued', 'running', 'metric', 'completed']);

  const failing = await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE);
  await stream.append(failing.id, {
    type: 'state',
    at: Date.now(),
    state: 'cancelled',
    error: { code: 'cancelled', message: 'DELETE', retryable: false },
  });
  await expect(qc.waitForResult(failing.id)).rejects.toBeInstanceOf(JobFailedError);
  const silent = await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE);
  const started = Date.now();
  const timeout = await qc.waitForResult(silent.id, { timeoutMs: 200 }).catch((err: unknown) => err);
  expect(timeout).toBeInstanceOf(WaitTimeoutError);
  expect(timeout).toMatchObject({ jobId: silent.id, timeoutMs: 200, lastState: 'queued' });
  expect(Date.now() - started).toBeGreaterThanOrEqual(190);
  // Giving up the wait leaves the job alone: a later wait still sees it finish.
  await stream.append(silent.id, { type: 'state', at: Date.now(), state: 'completed', result });
  await expect(qc.waitForResult(silent.id, { timeoutMs: 5000 })).resolves.toEqual(result);
});

test('close() closes every connection it opened, and later submissions fail', async () => {
  const qc = newClient();
  await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE);
  await qc.submitTrain({ ...CANONICAL_TRAIN_EXAMPLE, device: 'cpu' });
  const ctrl = new AbortController();
  const pending = qc.follow(randomUUID(), { signal: ctrl.signal }).next(); // opens the blocking connection
  await new Promise((r) => setTimeout(r, 100));
  expect(await connectionsNamed(`qc-${prefix}`)).toBe(2);
  ctrl.abort(new Error('enough'));
  await expect(pending).rejects.toThrow('enough');
  await qc.close();
  await qc.close(); // idempotent
  await new Promise((r) => setTimeout(r, 50));
  expect(await connectionsNamed(`qc-${prefix}`)).toBe(0);
  await expect(qc.submitTrain(CANONICAL_TRAIN_EXAMPLE)).rejects.toThrow(/closed/);
});
