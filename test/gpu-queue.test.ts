/**
 * No silent CPU for GPU jobs, across real processes: the compiled api and compiled workers on the
 * cpu backend against the real Redis. A worker told to consume `gpu` (WORKER_QUEUES) on a backend
 * without a hardware GPU leaves `gpu` out and says why at start-up; `/v1/workers` shows its backend,
 * device, gpu flag and queues; a `device: "gpu"` job submitted while no live worker serves `gpu` is
 * accepted (202) with `waitingFor`, in its view and as a `waiting_for_worker` event, and stays queued.
 */
import { Job } from 'bullmq';
import {
  CANONICAL_TRAIN_EXAMPLE,
  WAITING_FOR_WORKER,
  WorkerHeartbeatSchema,
  type JobEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { RunnerClient } from '@relu-lstm/client';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness, type WorkerProcess } from '../apps/worker/test/harness';

jest.setTimeout(120_000);

const WAITING_FOR_GPU = 'a live worker serving the gpu queue (hardware GPU backend)';
let api: ApiProcess;
let harness: Harness;
let client: RunnerClient;
let gpuAny: WorkerProcess;
let gpuOnly: WorkerProcess;

beforeAll(async () => {
  harness = new Harness({ RELU_LSTM_BACKEND: 'cpu' });
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
  });
  client = new RunnerClient({ baseUrl: api.url });
  [gpuAny, gpuOnly] = await Promise.all([
    harness.startReadyWorker({ WORKER_ID: 'gpu-any', WORKER_QUEUES: 'gpu,any' }),
    harness.startReadyWorker({ WORKER_ID: 'gpu-only', WORKER_QUEUES: 'gpu' }),
  ]);
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

const train = (device: 'gpu' | 'any') => ({
  ...CANONICAL_TRAIN_EXAMPLE,
  training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 1 },
  device,
});

test('a worker on the cpu backend consumes no gpu queue whatever WORKER_QUEUES says, and says why at start-up', async () => {
  expect(gpuAny.output()).toMatch(
    /WORKER_QUEUES names gpu, but the backend cpu \(device .+\) is not a hardware GPU backend: leaving the gpu queue to workers that have one/,
  );
  expect(gpuAny.output()).toContain('(its jobs wait for them); serving any');
  expect(gpuOnly.output()).toContain('serving cpu, any'); // nothing left of WORKER_QUEUES: the backend's own
  const workers = await client.workers();
  expect(workers.map((w) => [w.id, w.backend, w.gpu, w.queues])).toEqual([
    ['gpu-any', 'cpu', false, ['any']],
    ['gpu-only', 'cpu', false, ['cpu', 'any']],
  ]);
  for (const w of workers) expect(w.device).toEqual(expect.any(String));
});

test('a gpu job with no live worker serving gpu: 202 with waitingFor, in its view and its events; it stays queued', async () => {
  const submitted = await client.submitTrain(train('gpu'));
  expect(submitted).toMatchObject({ state: 'queued', waitingFor: WAITING_FOR_GPU });
  const view = await client.get(submitted.id);
  expect(view).toMatchObject({ state: 'queued', queue: 'gpu', waitingFor: WAITING_FOR_GPU });
  const events = await harness.allEvents(submitted.id);
  const log = events.find((e) => e.type === 'log' && e.code === WAITING_FOR_WORKER);
  expect(log).toMatchObject({ level: 'warning', data: { waitingFor: WAITING_FOR_GPU } });

  // An `any` job needs no capability: no waitingFor, and a worker runs it to the end...
  const any = await client.submitTrain(train('any'));
  expect(any.waitingFor).toBeUndefined();
  const anyEvents = await harness.waitForEnd(any.id, 60_000);
  expect(anyEvents.filter((e): e is StateEvent => e.type === 'state').map((e) => e.state)).toContain('completed');
  // ...while the gpu job, submitted first, was never taken.
  const job = await Job.fromId(harness.queue('gpu'), submitted.id);
  expect(await job!.getState()).toBe('prioritized'); // every job carries a fair-share priority
  expect(job!.attemptsMade).toBe(0);
  expect((await harness.allEvents(submitted.id)).map((e: JobEvent) => e.type)).toEqual(['state', 'log']);
});

test('with a live worker serving gpu (its heartbeat, as a GPU worker writes it) a gpu job has no waitingFor', async () => {
  // No hardware GPU here: the heartbeat a worker on a CUDA or hardware webgpu backend would write.
  const hb = WorkerHeartbeatSchema.parse({
    id: 'gpu-host',
    backend: 'tensorflow',
    gpu: true,
    device: 'NVIDIA H100',
    host: 'gpu-host',
    pid: 1,
    queues: ['gpu', 'any'],
    currentJobId: null,
    startedAt: Date.now(),
    at: Date.now(),
  });
  await harness.redis
    .multi()
    .set(harness.keys.worker(hb.id), JSON.stringify(hb), 'PX', 10_000)
    .zadd(harness.keys.workers(), Date.now() + 10_000, hb.id)
    .exec();
  try {
    const submitted = await client.submitTrain(train('gpu'));
    expect(submitted.waitingFor).toBeUndefined();
    expect((await client.get(submitted.id)).waitingFor).toBeUndefined();
    expect((await harness.allEvents(submitted.id)).some((e) => e.type === 'log')).toBe(false);
    await client.cancel(submitted.id);
  } finally {
    await harness.redis.multi().del(harness.keys.worker(hb.id)).zrem(harness.keys.workers(), hb.id).exec();
  }
});
