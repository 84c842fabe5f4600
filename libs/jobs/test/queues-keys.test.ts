import { randomUUID } from 'node:crypto';
import {
  CANONICAL_TRAIN_EXAMPLE,
  DEFAULT_JOB_POLICY,
  QUEUE_NAMES,
  contract,
  decodeJobError,
  encodeJobError,
  planJob,
  queueForDevice,
  queuesForWorker,
  servedQueues,
  waitingForOf,
  redisKeys,
} from '@relu-lstm/jobs';

describe('routing', () => {
  test('each device has its own queue; workers take theirs and any', () => {
    expect(QUEUE_NAMES).toEqual(['gpu', 'cpu', 'any']);
    expect(queueForDevice('gpu')).toBe('gpu');
    expect(queueForDevice('cpu')).toBe('cpu');
    expect(queueForDevice('any')).toBe('any');
    expect(queuesForWorker({ gpu: true })).toEqual(['gpu', 'any']);
    expect(queuesForWorker({ gpu: false })).toEqual(['cpu', 'any']);
  });

  test('servedQueues: gpu only on a hardware GPU backend, whatever WORKER_QUEUES says', () => {
    const needs = 'hardware GPU backend';
    expect(servedQueues(null, { gpu: true })).toEqual({ queues: ['gpu', 'any'], refused: [] });
    expect(servedQueues(null, { gpu: false })).toEqual({ queues: ['cpu', 'any'], refused: [] });
    expect(servedQueues(['gpu', 'any'], { gpu: true })).toEqual({ queues: ['gpu', 'any'], refused: [] });
    expect(servedQueues(['gpu', 'any'], { gpu: false })).toEqual({
      queues: ['any'],
      refused: [{ queue: 'gpu', needs }],
    });
    // Nothing left of WORKER_QUEUES: the backend's own queues.
    expect(servedQueues(['gpu'], { gpu: false })).toEqual({
      queues: ['cpu', 'any'],
      refused: [{ queue: 'gpu', needs }],
    });
    expect(servedQueues(['cpu'], { gpu: true })).toEqual({ queues: ['cpu'], refused: [] });
  });

  test('waitingForOf names the missing capability of a gpu job only', () => {
    const cpuWorker = { queues: ['cpu', 'any'] };
    expect(waitingForOf('gpu', [])).toBe('a live worker serving the gpu queue (hardware GPU backend)');
    expect(waitingForOf('gpu', [cpuWorker])).toBe('a live worker serving the gpu queue (hardware GPU backend)');
    expect(waitingForOf('gpu', [cpuWorker, { queues: ['gpu', 'any'] }])).toBeNull();
    expect(waitingForOf('cpu', [])).toBeNull();
    expect(waitingForOf('any', [])).toBeNull();
  });

  test('planJob decides queue, name, data, options and meta in one place', () => {
    const payload = contract.TrainPayload.parse({ ...CANONICAL_TRAIN_EXAMPLE, device: 'gpu' });
    const limits = { ...contract.limits, maxLayers: 32 };
    const job = planJob('train', payload, { limits, now: 1000, tenant: 't1' });
    expect(job.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(job).toMatchObject({
      queue: 'gpu',
      name: 'train',
      data: { type: 'train', tenant: 't1', limits, payload },
      opts: { jobId: job.id, attempts: DEFAULT_JOB_POLICY.attempts.train, backoff: { type: 'exponential' } },
      meta: { id: job.id, type: 'train', queue: 'gpu', device: 'gpu', tenant: 't1', createdAt: 1000 },
    });
    expect(planJob('train', payload, { limits }).id).not.toBe(job.id);
  });
});

describe('keys', () => {
  const k = redisKeys('relu-lstm');
  const id = randomUUID();

  test('every key sits under the prefix, away from the queue names', () => {
    const all = [
      k.jobMeta(id),
      k.events(id),
      k.cancel(id),
      k.checkpoint(id),
      k.published(id),
      k.jobIndex('default'),
      k.idempotency('default', 'my key'),
      k.dataset(id),
      k.datasetIndex('default'),
      k.worker('host-1-abc'),
      k.workers(),
      k.liveJobs('default'),
      k.liveJobsPruned('default'),
      k.rateLimit('tenant', 'default'),
      k.rateLimit('ip', '::ffff:127.0.0.1'),
    ];
    for (const key of all) {
      expect(key.startsWith('relu-lstm:')).toBe(true);
      expect(QUEUE_NAMES).not.toContain(key.split(':')[1]);
    }
    expect(new Set(all).size).toBe(all.length);
    expect(k.events(id)).toBe(`relu-lstm:job:${id}:events`);
  });

  test('idempotency keys are hashed, so any header value is safe', () => {
    expect(k.idempotency('default', 'a:b/../c')).toMatch(/^relu-lstm:idem:default:[0-9a-f]{64}$/);
  });

  test('rate-limit keys of client addresses are hashed (addresses hold ":")', () => {
    expect(k.rateLimit('ip', '::1')).toMatch(/^relu-lstm:rate:ip:[0-9a-f]{32}$/);
    expect(k.rateLimit('ip', '::1')).not.toBe(k.rateLimit('ip', '127.0.0.1'));
    expect(() => k.rateLimit('tenant', 'a:b')).toThrow(/tenant/);
  });

  test('ids that could break a key or a path are refused', () => {
    for (const bad of ['', '../x', 'a:b', 'a/b', 'a b', '.hidden']) {
      expect(() => k.jobMeta(bad)).toThrow(/job id/);
    }
    expect(() => redisKeys('bad:prefix')).toThrow(/prefix/);
  });
});

describe('job errors', () => {
  test('round-trip through failedReason; anything else is internal', () => {
    const s = encodeJobError({ code: 'diverged', message: 'loss is NaN', details: { epoch: 2, step: 40 } });
    expect(decodeJobError(s)).toEqual({
      code: 'diverged',
      message: 'loss is NaN',
      retryable: false,
      details: { epoch: 2, step: 40 },
    });
    expect(decodeJobError('connection lost')).toEqual({
      code: 'internal',
      message: 'connection lost',
      retryable: false,
    });
    expect(decodeJobError(undefined).code).toBe('internal');
  });
});
