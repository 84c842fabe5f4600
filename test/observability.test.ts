/**
 * Metrics and logs across real processes: the compiled api (with API keys, an admin key and JSON
 * logs) and a worker serving its own metrics (METRICS_PORT=0), on the real Redis. A training job
 * runs while both are scraped: its samples/s and loss, the active queue depth, the open event
 * stream and the worker's engine move; after a cancel and an inference, the finished-job counters
 * and run times do. Both processes run with secrets in their environment (a Redis password in
 * REDIS_URL, AWS_SECRET_ACCESS_KEY) and jobs carry recognisable values: none of them, nor any key,
 * appears in what they logged, and every line is a JSON object with its request or job fields.
 */
import { createHash, randomUUID } from 'node:crypto';
import { CANONICAL_TRAIN_EXAMPLE, type PayloadOf } from '@relu-lstm/jobs';
import { http, readSse, startApi, type ApiProcess, type SseEvent } from '../apps/api/test/harness';
import { Harness, tinyInlineInfer, waitFor, type WorkerProcess } from '../apps/worker/test/harness';

jest.setTimeout(120_000);

const CANARY = {
  redisPassword: `redis-pw-${randomUUID()}`,
  awsSecret: `aws-secret-${randomUUID()}`,
  tenantKey: `key-alpha-${randomUUID()}`,
  adminKey: `key-admin-${randomUUID()}`,
  /** A training seed and inference inputs nobody else would log. */
  seed: 918273645,
  input: 0.7391852046,
};
const hex = (k: string) => createHash('sha256').update(k).digest('hex');
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });
const ALPHA = bearer(CANARY.tenantKey);
const ADMIN = bearer(CANARY.adminKey);
const REDIS_WITH_PASSWORD = `redis://:${CANARY.redisPassword}@127.0.0.1:${new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379').port || 6379}`;
const WORKER_ID = `obs-${randomUUID().slice(0, 8)}`;

let harness: Harness;
let api: ApiProcess;
let worker: WorkerProcess;
let workerMetricsUrl: string;

/** `name{labels} value` lines of a Prometheus text body, as a lookup by the exact series. */
function parseMetrics(text: string): Map<string, number> {
  const series = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    series.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return series;
}

async function scrapeApi(): Promise<Map<string, number>> {
  const r = await http(api.url, 'GET', '/metrics', { headers: ADMIN });
  expect(r.status).toBe(200);
  expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(r.text);
}

async function scrapeWorker(): Promise<Map<string, number>> {
  const r = await http(workerMetricsUrl, 'GET', '/metrics');
  expect(r.status).toBe(200);
  return parseMetrics(r.text);
}

beforeAll(async () => {
  const secrets = { AWS_SECRET_ACCESS_KEY: CANARY.awsSecret, AWS_ACCESS_KEY_ID: 'obs-test', LOG_FORMAT: 'json' };
  harness = new Harness({ ...secrets, LOG_LEVEL: 'verbose' }, REDIS_WITH_PASSWORD);
  api = await startApi({
    ...secrets,
    LOG_LEVEL: 'verbose',
    REDIS_URL: REDIS_WITH_PASSWORD,
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
    API_KEYS: `alpha:${hex(CANARY.tenantKey)}`,
    ADMIN_KEY_HASH: hex(CANARY.adminKey),
  });
  worker = await harness.startReadyWorker({ METRICS_PORT: '0', WORKER_ID, WORKER_QUEUES: 'cpu,any' });
  await waitFor(
    () => /metrics on http:\/\/[\d.]+:\d+\/metrics/.test(worker.output()),
    10_000,
    () => `no metrics line:\n${worker.output()}`,
  );
  workerMetricsUrl = /metrics on (http:\/\/[\d.]+:\d+)\/metrics/.exec(worker.output())![1];
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

describe('GET /metrics', () => {
  test('needs the admin key when keys are configured', async () => {
    expect((await http(api.url, 'GET', '/metrics')).status).toBe(401);
    expect((await http(api.url, 'GET', '/metrics', { headers: ALPHA })).status).toBe(403);
    expect((await http(api.url, 'GET', '/metrics', { headers: ADMIN })).status).toBe(200);
  });

  test('a training job moves the api and worker metrics; cancel and inference count as finished', async () => {
    const before = await scrapeApi();
    const train: PayloadOf<'train'> = {
      ...structuredClone(CANONICAL_TRAIN_EXAMPLE),
      training: { ...structuredClone(CANONICAL_TRAIN_EXAMPLE.training), epochs: 2000, seed: CANARY.seed },
    } as PayloadOf<'train'>;
    const submitted = await http(api.url, 'POST', '/v1/jobs/train', { body: train, headers: ALPHA });
    expect(submitted.status).toBe(202);
    const id: string = submitted.json.id;
    expect(submitted.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);

    // Follow the job over SSE (one open event stream) until its first metric point.
    let firstMetric!: () => void;
    const metricSeen = new Promise<void>((r) => (firstMetric = r));
    const sse = readSse(api.url, `/v1/jobs/${id}/events`, {
      headers: ALPHA,
      timeoutMs: 60_000,
      onEvent: (e: SseEvent) => e.data?.type === 'metric' && firstMetric(),
    });
    await metricSeen;

    // The running jobs are the workers' current jobs, as their heartbeats (every 500 ms here) say.
    const job = `job_id="${id}",worker_id="${WORKER_ID}"`;
    let running = new Map<string, number>();
    await waitFor(
      async () => (running = await scrapeApi()).has(`relu_lstm_job_samples_per_second{${job}}`),
      5_000,
      () => `no samples/s for the running job: ${[...running.keys()].filter((k) => k.includes('job_')).join(' ')}`,
    );
    expect(running.get(`relu_lstm_job_samples_per_second{${job}}`)).toBeGreaterThan(0);
    expect(Number.isFinite(running.get(`relu_lstm_job_loss{${job}}`))).toBe(true);
    expect(running.get('relu_lstm_queue_jobs{queue="any",state="active"}')).toBe(1);
    expect(running.get('relu_lstm_queue_jobs{queue="any",state="waiting"}')).toBe(0);
    expect(running.get('relu_lstm_api_event_streams')).toBe(1);
    expect([...running.keys()].filter((k) => k.startsWith('relu_lstm_workers{'))).toHaveLength(1);
    expect(running.get('relu_lstm_api_requests_total{method="POST",route="/v1/jobs/train",status="202"}')).toBe(1);
    expect(running.get('relu_lstm_redis_ping_duration_seconds_count')).toBeGreaterThan(0);
    // The engine reports its tensors every second.
    let w = new Map<string, number>();
    await waitFor(
      async () => ((w = await scrapeWorker()).get('relu_lstm_worker_engine_tensors') ?? 0) > 0,
      5_000,
      () => `no engine tensors: ${[...w].filter(([k]) => k.includes('engine')).join(' ')}`,
    );
    expect(w.get(`relu_lstm_worker_current_job{job_id="${id}"}`)).toBe(1);
    expect(w.get('relu_lstm_worker_busy')).toBe(1);
    expect(w.get('relu_lstm_worker_engine_tensors')).toBeGreaterThan(0);
    expect(w.get('relu_lstm_worker_engine_resident_memory_bytes')).toBeGreaterThan(10 * 2 ** 20);

    expect((await http(api.url, 'DELETE', `/v1/jobs/${id}`, { headers: ALPHA })).status).toBe(202);
    const stream = await sse;
    expect(stream.events.at(-1)?.data).toMatchObject({ type: 'state', state: 'cancelled' });
    const infer = { ...tinyInlineInfer(4), inputs: [[[CANARY.input], [CANARY.input], [CANARY.input]]] };
    const done = await http(api.url, 'POST', '/v1/jobs/infer?wait=true', { body: infer, headers: ALPHA });
    expect([done.status, done.json.state]).toEqual([200, 'completed']);

    // The counters come from BullMQ's queue events, read asynchronously, and the running jobs from
    // the heartbeats (a beat every 500 ms here): poll briefly.
    let after = new Map<string, number>();
    const finished = (type: string, outcome: string) =>
      (after.get(`relu_lstm_jobs_finished_total{type="${type}",outcome="${outcome}"}`) ?? 0) -
      (before.get(`relu_lstm_jobs_finished_total{type="${type}",outcome="${outcome}"}`) ?? 0);
    await waitFor(
      async () => {
        after = await scrapeApi();
        const noneRunning = ![...after.keys()].some((k) => k.startsWith('relu_lstm_job_samples_per_second{'));
        return finished('train', 'cancelled') === 1 && finished('infer', 'completed') === 1 && noneRunning;
      },
      10_000,
      () => `finished counters did not move: ${[...after].filter(([k]) => k.includes('finished')).join(' ')}`,
    );
    expect(after.get('relu_lstm_job_duration_seconds_count{type="train",outcome="cancelled"}')).toBe(1);
    expect(after.get('relu_lstm_job_duration_seconds_sum{type="train",outcome="cancelled"}')).toBeGreaterThan(0);
    expect(after.get('relu_lstm_queue_jobs{queue="any",state="active"}')).toBe(0);
    expect(after.get('relu_lstm_api_event_streams')).toBe(0);
    const idle = await scrapeWorker();
    expect(idle.get('relu_lstm_worker_busy')).toBe(0);
    expect([...idle.keys()].some((k) => k.startsWith('relu_lstm_worker_current_job{'))).toBe(false);
  });
});

describe('Bull Board at /v1/admin/queues', () => {
  test('the admin key only, everything under it; read-only: its actions answer 405', async () => {
    const api_ = '/v1/admin/queues/api/queues?activeQueue=any&status=latest&page=1&jobsPerPage=10';
    for (const path of ['/v1/admin/queues', api_, '/v1/admin/queues/static/x.js']) {
      expect([path, (await http(api.url, 'GET', path)).status]).toEqual([path, 401]);
      expect([path, (await http(api.url, 'GET', path, { headers: ALPHA })).status]).toEqual([path, 403]);
    }
    const page = await http(api.url, 'GET', '/v1/admin/queues', { headers: ADMIN });
    expect([page.status, page.headers['content-type']]).toEqual([200, expect.stringMatching(/^text\/html/)]);
    // Its own CSP: no third-party style (the Google font it links) loads.
    expect(page.headers['content-security-policy']).toContain("style-src 'self' 'unsafe-inline'");
    const queues = await http(api.url, 'GET', api_, { headers: ADMIN });
    expect(queues.json.queues.map((q: { name: string }) => q.name).sort()).toEqual(['any', 'cpu', 'gpu']);
    expect(queues.json.queues.every((q: { readOnlyMode: boolean }) => q.readOnlyMode)).toBe(true);
    for (const action of ['any/retry/failed', 'any/clean/completed', 'any/pause', 'any/empty']) {
      const r = await http(api.url, 'PUT', `/v1/admin/queues/api/queues/${action}`, { headers: ADMIN });
      expect([action, r.status]).toEqual([action, 405]);
    }
  });
});

describe('logs', () => {
  test('JSON lines with request and job fields, and no key, secret or payload value', async () => {
    const given = `obs-test-${randomUUID()}`;
    const r = await http(api.url, 'GET', '/v1/jobs', { headers: { ...ALPHA, 'x-request-id': given } });
    expect(r.headers['x-request-id']).toBe(given);
    await api.stop();
    worker.proc.kill('SIGTERM');
    await worker.exited;
    const lines = (name: string, text: string) =>
      text
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            throw new Error(`${name} wrote a line that is not JSON: ${l}`);
          }
        });
    const apiLines = lines('the api', api.output());
    const workerLines = lines('the worker', worker.output());
    expect(apiLines.length).toBeGreaterThan(20);

    // The api: one access line per request, each with its id; every line of a request has it.
    const access = apiLines.filter((l) => l.context === 'http' && /^(GET|POST|DELETE) \//.test(String(l.message)));
    expect(access.find((l) => l.requestId === given)).toMatchObject({
      message: expect.stringMatching(/^GET \/v1\/jobs 200 /),
    });
    expect(access.find((l) => String(l.message).startsWith('POST /v1/jobs/train 202'))).toBeDefined();
    for (const l of access) expect([l.message, l.requestId]).toEqual([l.message, expect.any(String)]);

    // The worker: every line about a job carries its id, the attempt and the worker's id.
    const jobLines = workerLines.filter((l) => l.jobId !== undefined);
    expect(jobLines.length).toBeGreaterThan(0);
    for (const l of jobLines)
      expect(l).toMatchObject({ jobId: expect.any(String), workerId: WORKER_ID, attempt: expect.any(Number) });
    for (const l of workerLines.filter((x) => /job [0-9a-f-]{36}/.test(String(x.message))))
      expect([l.message, l.jobId]).toEqual([l.message, /job ([0-9a-f-]{36})/.exec(String(l.message))![1]]);

    const everything = api.output() + worker.output();
    for (const [what, value] of Object.entries(CANARY)) {
      expect([what, everything.includes(String(value))]).toEqual([what, false]);
    }
  });
});
