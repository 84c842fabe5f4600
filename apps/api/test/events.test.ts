// Live parts of the api against the real Redis: SSE replay, live delivery, Last-Event-ID, the
// terminal event made up from BullMQ's record, infer?wait=true, model references, and cancelling a
// running job. A stand-in worker (a BullMQ Worker in this process, following the worker contract of
// @relu-lstm/jobs) consumes the `gpu` queue; jobs that must stay queued go to `any`.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Worker, UnrecoverableError, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  RedisJobEventStream,
  decodeJobError,
  encodeJobError,
  redisKeys,
  type InferResult,
  type JobData,
  type JobEvent,
  type RedisKeys,
} from '@relu-lstm/jobs';
import { REDIS_URL, dropPrefix, http, readSse, sleep, startApi, type ApiProcess } from './harness';

let api: ApiProcess;
let redis: Redis;
let keys: RedisKeys;
let stream: RedisJobEventStream;
let worker: Worker<JobData>;

const canonical = (): any => JSON.parse(JSON.stringify(CANONICAL_TRAIN_EXAMPLE));
const post = (path: string, body: unknown) => http(api.url, 'POST', path, { body });
const get = (path: string) => http(api.url, 'GET', path);
const now = () => Date.now();
const metric = (step: number): JobEvent => ({
  type: 'metric',
  at: now(),
  epoch: 0,
  step,
  loss: 1 / step,
  valLoss: null,
  gradNorm: 1,
  samplesPerSec: 10,
  elapsedMs: step,
});
const inlineModel = {
  config: { inputSize: 1, hiddenSize: 2, outputSize: 1 },
  stateDict: { weight_ih_l0: [[0.1], [0.2], [0.3], [0.4], [0.5], [0.6], [0.7], [0.8]] },
};

/** Markers in payloads that steer the stand-in worker. */
const SILENT_INPUT = 99; // infer: complete without writing the terminal event (a crash between the two writes)
const CANCELLABLE_SEED = 4242; // train: run until the cancel flag appears

async function process(job: Job<JobData>): Promise<InferResult | undefined> {
  await stream.append(job.id!, {
    type: 'state',
    at: now(),
    state: 'running',
    attempt: job.attemptsMade + 1,
    workerId: 'stand-in',
  });
  if (job.data.type === 'train' && job.data.payload.training.seed === CANCELLABLE_SEED) {
    for (let step = 1; ; step++) {
      await stream.append(job.id!, metric(step));
      await job.updateProgress({
        epoch: 0,
        step,
        loss: 1 / step,
        valLoss: null,
        gradNorm: 1,
        samplesPerSec: 10,
        elapsedMs: step,
      });
      if (await redis.exists(keys.cancel(job.id!)))
        throw new UnrecoverableError(encodeJobError({ code: 'cancelled', message: 'cancelled by request' }));
      await sleep(50);
    }
  }
  if (job.data.type === 'infer') {
    const x = job.data.payload.inputs;
    return {
      outputs: x.map((seq) => seq.map((step) => [step[0] * 2])),
      hN: [[[0.5, 0.5]]],
      cN: [[[1, 1]]],
      backend: 'cpu',
      gpu: false,
      elapsedMs: 1,
    };
  }
  return undefined;
}

beforeAll(async () => {
  api = await startApi({ SSE_KEEPALIVE_MS: '300', INFER_WAIT_MS: '1500' });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  keys = redisKeys(api.prefix);
  stream = new RedisJobEventStream(redis, keys);
  worker = new Worker<JobData>('gpu', process, {
    connection: { url: REDIS_URL, maxRetriesPerRequest: null },
    prefix: api.prefix,
    concurrency: 4,
  });
  // The terminal event goes in after BullMQ has recorded the outcome, as the worker contract says.
  worker.on('completed', (job, result) => {
    if (job.data.type === 'infer' && job.data.payload.inputs[0][0][0] === SILENT_INPUT) return;
    void stream.append(job.id!, { type: 'state', at: now(), state: 'completed', result: result as InferResult });
  });
  worker.on('failed', (job, err) => {
    if (!job) return;
    const error = decodeJobError(err.message);
    void stream.append(job.id!, {
      type: 'state',
      at: now(),
      state: error.code === 'cancelled' ? 'cancelled' : 'failed',
      error,
    });
  });
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  const code = await api?.stop();
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
  expect(code).toBe(0);
});

async function queuedTrain(device = 'any', overrides: Record<string, unknown> = {}): Promise<string> {
  const r = await post('/v1/jobs/train', { ...canonical(), device, ...overrides });
  expect(r.status).toBe(202);
  return r.json.id;
}

describe('GET /v1/jobs/:id/events', () => {
  test('a late subscriber gets the whole history with stream ids, and the stream ends after the terminal event', async () => {
    const id = await queuedTrain();
    await stream.append(id, { type: 'state', at: now(), state: 'running', attempt: 1, workerId: 'w1' });
    for (let s = 1; s <= 5; s++) await stream.append(id, metric(s));
    await stream.append(id, { type: 'log', at: now(), level: 'info', message: 'checkpoint', code: 'checkpoint' });
    await stream.append(id, { type: 'state', at: now(), state: 'completed' });
    const stored = await stream.read(id);

    const r = await readSse(api.url, `/v1/jobs/${id}/events`);
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(r.ended).toBe(true);
    expect(r.events.map((e) => e.id)).toEqual(stored.map((e) => e.id));
    expect(r.events.map((e) => e.event)).toEqual([
      'state',
      'state',
      'metric',
      'metric',
      'metric',
      'metric',
      'metric',
      'log',
      'state',
    ]);
    expect(r.events.map((e) => e.data)).toEqual(stored.map((e) => e.event));
    expect(r.events.filter((e) => e.event === 'metric').map((e) => e.data.step)).toEqual([1, 2, 3, 4, 5]);

    // Resume after the fourth event, as EventSource does with Last-Event-ID (or ?after=).
    const resumed = await readSse(api.url, `/v1/jobs/${id}/events`, { headers: { 'Last-Event-ID': stored[3].id } });
    expect(resumed.events.map((e) => e.id)).toEqual(stored.slice(4).map((e) => e.id));
    const after = await readSse(api.url, `/v1/jobs/${id}/events?after=${stored[7].id}`);
    expect(after.events.map((e) => e.id)).toEqual([stored[8].id]);
  });

  test('a live subscriber gets events as they come, with keep-alives while quiet', async () => {
    const id = await queuedTrain();
    const writer = (async () => {
      await sleep(200);
      await stream.append(id, { type: 'state', at: now(), state: 'running', attempt: 1 });
      for (let s = 1; s <= 3; s++) {
        await sleep(250);
        await stream.append(id, metric(s));
      }
      await sleep(700);
      await stream.append(id, {
        type: 'state',
        at: now(),
        state: 'failed',
        error: { code: 'diverged', message: 'loss is NaN', retryable: false },
      });
    })();
    const r = await readSse(api.url, `/v1/jobs/${id}/events`);
    await writer;
    expect(r.ended).toBe(true);
    expect(r.events.map((e) => (e.event === 'state' ? e.data.state : e.data.step))).toEqual([
      'queued',
      'running',
      1,
      2,
      3,
      'failed',
    ]);
    expect(r.events.at(-1)!.data.error.code).toBe('diverged');
    expect(r.comments).toBeGreaterThan(0);
  });

  test('bad Last-Event-ID is 400, an unknown job 404', async () => {
    const id = await queuedTrain();
    const bad = await http(api.url, 'GET', `/v1/jobs/${id}/events`, { headers: { 'Last-Event-ID': 'DROP TABLE' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues[0].path).toBe('Last-Event-ID');
    expect((await http(api.url, 'GET', `/v1/jobs/${randomUUID()}/events`)).status).toBe(404);
  });

  test('when the worker died before writing the terminal event, the feed makes it up from BullMQ', async () => {
    const r = await post('/v1/jobs/infer', { model: inlineModel, inputs: [[[SILENT_INPUT]]], device: 'gpu' });
    expect(r.status).toBe(202);
    const sse = await readSse(api.url, `/v1/jobs/${r.json.id}/events`, { timeoutMs: 10_000 });
    expect(sse.ended).toBe(true);
    const last = sse.events.at(-1)!;
    expect(last.id).toBeUndefined();
    expect(last.data).toMatchObject({ type: 'state', state: 'completed', result: { outputs: [[[2 * SILENT_INPUT]]] } });
    expect(sse.events.slice(0, -1).every((e) => e.id)).toBe(true);
  });
});

describe('POST /v1/jobs/infer?wait=true', () => {
  test('answers 200 with the result when the job finishes in time', async () => {
    const r = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', {
      body: { model: inlineModel, inputs: [[[0.1], [0.2], [0.3]]], device: 'gpu' },
    });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({
      state: 'completed',
      error: null,
      result: { outputs: [[[0.2], [0.4], [0.6]]], hN: [[[0.5, 0.5]]], cN: [[[1, 1]]] },
    });
    expect((await get(`/v1/jobs/${r.json.id}`)).json.state).toBe('completed');
  });

  test('answers 202 when it does not finish within INFER_WAIT_MS', async () => {
    const t0 = Date.now();
    const r = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', {
      body: { model: inlineModel, inputs: [[[0.1]]], device: 'any' },
    });
    expect(r.status).toBe(202);
    expect(r.json.state).toBe('queued');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(
      (await http(api.url, 'POST', '/v1/jobs/infer?wait=maybe', { body: { model: inlineModel, inputs: [[[0.1]]] } }))
        .status,
    ).toBe(400);
  });
});

describe('model references', () => {
  test('modelJobId and fromJob need a train job with a model, of a matching shape', async () => {
    const trainId = await queuedTrain();
    const noModel = await post('/v1/jobs/infer', { modelJobId: trainId, inputs: [[[0.1]]] });
    expect(noModel.status).toBe(400);
    expect(noModel.json.error.issues[0]).toMatchObject({ path: 'modelJobId', code: 'not_found' });
    expect(noModel.json.error.issues[0].message).toContain('no trained model');

    const dir = join(api.artifactDir, trainId);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'model.safetensors'), Buffer.alloc(16));
    const model = {
      inputSize: 1,
      hiddenSize: 16,
      numLayers: 1,
      bias: true,
      bidirectional: false,
      activation: 'relu',
      recurrentActivation: 'sigmoid',
      outputSize: 1,
      head: 'manyToMany',
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify({ jobId: trainId, model }));

    const wide = await post('/v1/jobs/infer', { modelJobId: trainId, inputs: [[[0.1, 0.2]]] });
    expect(wide.status).toBe(400);
    expect(wide.json.error.issues[0]).toMatchObject({ path: 'inputs', expected: 'shape [B, T, 1]' });
    const ok = await post('/v1/jobs/infer', { modelJobId: trainId, inputs: [[[0.1], [0.2], [0.3]]] });
    expect(ok.status).toBe(202);

    const inferId = ok.json.id;
    const notTrain = await post('/v1/jobs/infer', { modelJobId: inferId, inputs: [[[0.1]]] });
    expect(notTrain.json.error.issues[0].message).toContain('infer job');

    const resumed = await post('/v1/jobs/train', { ...canonical(), fromJob: trainId });
    expect(resumed.status).toBe(202);
    const mismatch = canonical();
    mismatch.model.hiddenSize = 32;
    const bad = await post('/v1/jobs/train', { ...mismatch, fromJob: trainId });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues).toEqual([
      expect.objectContaining({ path: 'model.hiddenSize', expected: '16', received: '32' }),
    ]);

    // A config.json that is not JSON cannot be checked against: accepted (the worker reports it), not a 500.
    await writeFile(join(dir, 'config.json'), '{ not json');
    expect((await post('/v1/jobs/infer', { modelJobId: trainId, inputs: [[[0.1, 0.2]]] })).status).toBe(202);
    expect((await post('/v1/jobs/train', { ...mismatch, fromJob: trainId })).status).toBe(202);
  });
});

describe('cancelling a running job', () => {
  test('sets the flag; the worker stops, the job ends cancelled and is not retried', async () => {
    const id = await queuedTrain('gpu', { training: { ...canonical().training, seed: CANCELLABLE_SEED } });
    for (let i = 0; i < 100 && (await get(`/v1/jobs/${id}`)).json.state !== 'running'; i++) await sleep(50);
    const running = await get(`/v1/jobs/${id}`);
    expect(running.json).toMatchObject({ state: 'running', attempts: 1 });

    const r = await http(api.url, 'DELETE', `/v1/jobs/${id}`);
    expect(r.status).toBe(202);
    expect(r.json).toEqual({ id, state: 'running', cancelRequested: true });

    const sse = await readSse(api.url, `/v1/jobs/${id}/events`, { timeoutMs: 10_000 });
    expect(sse.ended).toBe(true);
    expect(sse.events.at(-1)!.data).toMatchObject({ type: 'state', state: 'cancelled', error: { code: 'cancelled' } });
    const metrics = sse.events.filter((e) => e.event === 'metric').map((e) => e.data.step);
    expect(metrics.length).toBeGreaterThan(0);
    expect(metrics).toEqual([...metrics].sort((a, b) => a - b));

    const view = (await get(`/v1/jobs/${id}`)).json;
    expect(view).toMatchObject({
      state: 'cancelled',
      attempts: 1,
      cancelRequested: false,
      error: { code: 'cancelled' },
    });
    expect(view.progress).toMatchObject({ epoch: 0 });
    expect((await http(api.url, 'DELETE', `/v1/jobs/${id}`)).status).toBe(409);
  });
});
