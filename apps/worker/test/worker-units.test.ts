/**
 * The worker's pure parts, imported directly (none of them loads NestJS, which jest cannot require):
 * configuration parsing, error mapping, metrics.csv, the model LRU, the boot check of the job handlers.
 */
import * as path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import {
  DivergenceError,
  LstmConfigError,
  LstmInputError,
  StateDictError,
  TrainingAbortedError,
  BackendError,
  type SequenceModel,
} from '@relu-lstm/lstm';
import { ArtifactNotFoundError, DatasetNotFoundError, decodeJobError, JOB_TYPES, type JobType } from '@relu-lstm/jobs';
import { WorkerConfigError, loadWorkerConfig } from '../src/config';
import { PayloadError, toJobError } from '../src/engine/errors';
import { ModelCache } from '../src/engine/models';
import { jobErrorOf, jobFailure } from '../src/jobs/job-errors';
import { handlersByType, type JobHandler } from '../src/jobs/job-handler';
import { metricsCsv } from '../src/jobs/metrics-csv';

describe('loadWorkerConfig', () => {
  it('fills defaults', () => {
    const c = loadWorkerConfig({});
    expect(c).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'relu-lstm',
      queues: null,
      backend: 'auto',
      heartbeat: { intervalMs: 5000, ttlMs: 15000 },
      lock: { durationMs: 30000, stalledIntervalMs: 30000, maxStalledCount: 3 },
      progressEvery: 1,
      cancelPollMs: 1000,
      modelCacheSize: 4,
    });
    expect(c.workerId).toMatch(/^[A-Za-z0-9._-]+-\d+-[0-9a-f]{6}$/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads every variable, trimming and treating blanks as unset', () => {
    const c = loadWorkerConfig({
      REDIS_URL: ' redis://r:6380/2 ',
      QUEUE_PREFIX: 'p1',
      WORKER_QUEUES: 'gpu, any',
      RELU_LSTM_BACKEND: 'wasm',
      WORKER_ID: 'w-1',
      LOCK_DURATION_MS: '1000',
      STALLED_INTERVAL_MS: '500',
      MAX_STALLED_COUNT: '0',
      PROGRESS_EVERY: '',
      ARTIFACT_DIR: '/tmp/a',
    });
    expect(c).toMatchObject({
      redisUrl: 'redis://r:6380/2',
      queuePrefix: 'p1',
      queues: ['gpu', 'any'],
      backend: 'wasm',
      workerId: 'w-1',
      artifactDir: '/tmp/a',
      progressEvery: 1,
    });
    expect(c.lock).toEqual({ durationMs: 1000, stalledIntervalMs: 500, maxStalledCount: 0 });
  });

  it('reads the store locations as a path or a file: URL, and names one with an unknown scheme', () => {
    const c = loadWorkerConfig({ ARTIFACT_DIR: 'file:///tmp/b', DATASET_DIR: 'rel/d' });
    expect(c).toMatchObject({ artifactDir: '/tmp/b', datasetDir: path.resolve('rel/d') });
    expect(() => loadWorkerConfig({ ARTIFACT_DIR: 'ftp://host/x' })).toThrow(
      /ARTIFACT_DIR: expected a directory path or a URL with scheme file:, s3: \(got "ftp:\/\/host\/x"\)/,
    );
  });

  it('names every bad variable at once', () => {
    let err: unknown;
    try {
      loadWorkerConfig({
        REDIS_URL: 'http://x',
        WORKER_QUEUES: 'gpu,tpu',
        LOCK_DURATION_MS: '10',
        QUEUE_PREFIX: 'a:b',
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(WorkerConfigError);
    const text = (err as WorkerConfigError).problems.join('\n');
    for (const v of ['REDIS_URL', 'WORKER_QUEUES', 'LOCK_DURATION_MS', 'QUEUE_PREFIX']) expect(text).toContain(v);
    expect(() => loadWorkerConfig({ WORKER_QUEUES: 'any,any' })).toThrow(/no queue twice/);
    expect(() => loadWorkerConfig({ HEARTBEAT_INTERVAL_MS: '5000', HEARTBEAT_TTL_MS: '4000' })).toThrow(/must exceed/);
  });

  it('per-job wall-clock limits: defaults 24 h (train) and 5 min (infer), bounded, named when bad', () => {
    expect(loadWorkerConfig({}).timeouts).toEqual({ trainMs: 86_400_000, inferMs: 300_000 });
    expect(loadWorkerConfig({ JOB_TIMEOUT_TRAIN_MS: '3600000', JOB_TIMEOUT_INFER_MS: '1500' }).timeouts).toEqual({
      trainMs: 3_600_000,
      inferMs: 1500,
    });
    for (const [name, value] of [
      ['JOB_TIMEOUT_TRAIN_MS', '0'],
      ['JOB_TIMEOUT_TRAIN_MS', 'an hour'],
      ['JOB_TIMEOUT_TRAIN_MS', String(31 * 24 * 3600 * 1000)],
      ['JOB_TIMEOUT_INFER_MS', '-5'],
      ['JOB_TIMEOUT_INFER_MS', '1.5'],
    ]) {
      expect(() => loadWorkerConfig({ [name]: value })).toThrow(
        new RegExp(`${name}: .*\\(got "${value.replace('.', '\\.')}"\\)`),
      );
    }
  });
});

describe('job errors', () => {
  it('maps library and store errors to reason codes', () => {
    expect(toJobError(new DivergenceError(2, 17, 'loss', NaN))).toEqual({
      code: 'diverged',
      message: expect.any(String),
      retryable: false,
      details: { epoch: 2, step: 17, quantity: 'loss', value: 'NaN' },
    });
    expect(toJobError(new TrainingAbortedError(1, 5)).code).toBe('cancelled');
    expect(toJobError(new LstmConfigError('batchSize', 'a positive integer', 0))).toMatchObject({
      code: 'invalid_payload',
      details: { field: 'batchSize' },
    });
    expect(toJobError(new LstmInputError('data.x', 'finite values', 'NaN')).code).toBe('invalid_payload');
    expect(toJobError(new StateDictError('head.bias', 'missing')).code).toBe('invalid_payload');
    expect(toJobError(new PayloadError('fromJob: other shape', 'model.hiddenSize'))).toMatchObject({
      code: 'invalid_payload',
      details: { field: 'model.hiddenSize' },
    });
    expect(toJobError(new ArtifactNotFoundError('j', 'model.safetensors')).code).toBe('not_found');
    expect(toJobError(new DatasetNotFoundError('d')).code).toBe('not_found');
    expect(toJobError(new BackendError('no wasm'))).toMatchObject({ code: 'backend_unavailable', retryable: true });
    expect(toJobError(new RangeError('boom'))).toEqual({
      code: 'internal',
      message: 'RangeError: boom',
      retryable: true,
    });
  });

  it('throws permanent codes as UnrecoverableError, the rest as plain errors, with a decodable message', () => {
    const permanent = jobFailure({ code: 'invalid_payload', message: 'bad', details: { field: 'x' } });
    expect(permanent).toBeInstanceOf(UnrecoverableError);
    expect(jobErrorOf(permanent)).toEqual({
      code: 'invalid_payload',
      message: 'bad',
      retryable: false,
      details: { field: 'x' },
    });
    const transient = jobFailure({ code: 'internal', message: 'engine died' });
    expect(transient).not.toBeInstanceOf(UnrecoverableError);
    expect(decodeJobError(transient.message)).toMatchObject({ code: 'internal', retryable: true });
    // BullMQ's own failures (e.g. a job stalled too often) read as internal.
    expect(jobErrorOf(new Error('job stalled more than allowable limit'))).toMatchObject({
      code: 'internal',
      message: 'job stalled more than allowable limit',
    });
  });
});

describe('handlersByType (the boot check)', () => {
  const handler = (type: JobType): JobHandler => ({ type, run: () => Promise.reject(new Error('not run here')) });

  it('maps every job type to its one handler', () => {
    const handlers = JOB_TYPES.map(handler);
    const byType = handlersByType(handlers);
    expect([...byType.keys()].sort()).toEqual([...JOB_TYPES].sort());
    for (const h of handlers) expect(byType.get(h.type)).toBe(h);
  });

  it('refuses a job type without a handler, and one with two', () => {
    const [first, ...others] = JOB_TYPES;
    expect(() => handlersByType(others.map(handler))).toThrow(`no handler for job type(s) ${first}`);
    expect(() => handlersByType([...JOB_TYPES.map(handler), handler(first)])).toThrow(
      `two handlers for job type '${first}'`,
    );
  });
});

describe('metricsCsv', () => {
  it('writes a header and one row per point, nulls as empty cells', () => {
    const csv = metricsCsv([
      {
        epoch: 0,
        step: 2,
        loss: 0.5,
        valLoss: null,
        gradNorm: 1.25,
        samplesPerSec: 100,
        elapsedMs: 10,
        epochEnd: false,
        learningRate: 0.01,
      },
      {
        epoch: 0,
        step: 4,
        loss: 0.25,
        valLoss: 0.3,
        gradNorm: null,
        samplesPerSec: 120,
        elapsedMs: 20,
        epochEnd: true,
      },
    ]);
    expect(csv).toBe(
      'epoch,step,loss,valLoss,gradNorm,samplesPerSec,elapsedMs,epochEnd,learningRate,name,tags\n' +
        '0,2,0.5,,1.25,100,10,0,0.01,,\n' +
        '0,4,0.25,0.3,,120,20,1,,,\n',
    );
  });

  it("repeats the job's name and tags on every row, quoted where they hold commas or quotes", () => {
    const point = { epoch: 0, step: 1, loss: 1, valLoss: null, gradNorm: null, samplesPerSec: 1, elapsedMs: 1 };
    const csv = metricsCsv([point, point], { name: 'run, "a"', tags: { team: 'x', lr: '0.1' } });
    const row = '0,1,1,,,1,1,,,"run, ""a""","{""team"":""x"",""lr"":""0.1""}"';
    expect(csv.split('\n')).toEqual([
      'epoch,step,loss,valLoss,gradNorm,samplesPerSec,elapsedMs,epochEnd,learningRate,name,tags',
      row,
      row,
      '',
    ]);
  });
});

describe('ModelCache', () => {
  /** A model of `params` float32 weights. */
  const fake = (params = 1) => {
    const m = {
      disposed: false,
      parameters: () => new Map([['w', { size: params }]]),
      dispose() {
        m.disposed = true;
      },
    };
    return m;
  };
  const asModel = (m: ReturnType<typeof fake>) => m as unknown as SequenceModel;

  it('keeps the most recently used models and disposes the evicted ones', () => {
    const cache = new ModelCache(2);
    const [a, b, c] = [fake(), fake(), fake()];
    cache.put('a@1', asModel(a));
    cache.put('b@1', asModel(b));
    expect(cache.get('a@1')).toBe(a); // a is now the most recent
    cache.put('c@1', asModel(c));
    expect(b.disposed).toBe(true);
    expect(cache.get('b@1')).toBeUndefined();
    expect(cache.size).toBe(2);
    expect(a.disposed || c.disposed).toBe(false);
  });

  it('replaces (and disposes) an older version of the same job, and holds nothing with capacity 0', () => {
    const cache = new ModelCache(4);
    const [v1, v2] = [fake(), fake()];
    cache.put('job@100:1', asModel(v1));
    cache.put('job@100:2', asModel(v2));
    expect(v1.disposed).toBe(true);
    expect(cache.get('job@100:2')).toBe(v2);
    cache.clear();
    expect(v2.disposed).toBe(true);
    const none = new ModelCache(0);
    expect(none.put('x@1', asModel(fake()))).toBe(false);
    expect(none.size).toBe(0);
  });

  it('keeps the weights of its models under maxBytes, evicting the least recently used', () => {
    const cache = new ModelCache(10, 1000); // 250 float32 weights
    const [a, b, c] = [fake(100), fake(100), fake(100)];
    cache.put('a@1', asModel(a));
    cache.put('b@1', asModel(b));
    expect(cache.get('a@1')).toBe(a);
    cache.put('c@1', asModel(c)); // 1200 bytes: b, the least recently used, goes
    expect([a.disposed, b.disposed, c.disposed]).toEqual([false, true, false]);
    expect(cache.size).toBe(2);
    expect(cache.put('big@1', asModel(fake(300)))).toBe(false); // bigger than the bound: not cached at all
    expect(cache.size).toBe(2);
  });
});
