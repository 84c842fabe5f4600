/**
 * RunnerClient against a real HTTP server (node:http on 127.0.0.1) speaking the api's response shapes
 * (`@relu-lstm/jobs` http.ts): requests, headers, error mapping, SSE with reconnects, waits, downloads.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import {
  JobFailedError,
  PayloadValidationError,
  parseRetryAfter,
  RunnerApiError,
  RunnerClient,
  RunnerConnectionError,
  WaitTimeoutError,
  type JobView,
  type StoredEvent,
} from '@relu-lstm/client';
import { CANONICAL_TRAIN_EXAMPLE, type JobEvent, type TrainResult } from '@relu-lstm/jobs';
import { apiError, sendJson, sseEvent, sseHead, startServer, type TestServer } from './helpers/server';

const links = (id: string) => ({
  self: `/v1/jobs/${id}`,
  events: `/v1/jobs/${id}/events`,
  artifacts: `/v1/jobs/${id}/artifacts`,
});
const trainResult: TrainResult = {
  epochs: 3,
  steps: 24,
  finalLoss: 0.01,
  finalValLoss: null,
  samplesPerSec: 1000,
  elapsedMs: 500,
  resumedFromEpoch: null,
  backend: 'cpu',
  gpu: false,
  artifacts: ['model.safetensors', 'state.json'],
};
const metric = (step: number): JobEvent => ({
  type: 'metric',
  at: 1,
  epoch: 0,
  step,
  loss: 1 / step,
  valLoss: null,
  gradNorm: null,
  samplesPerSec: 10,
  elapsedMs: step,
});
const state = (s: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled', extra: object = {}): JobEvent =>
  ({ type: 'state', at: 1, state: s, ...extra }) as JobEvent;

function view(id: string, over: Partial<JobView> = {}): JobView {
  return {
    id,
    type: 'train',
    state: 'queued',
    queue: 'any',
    device: 'any',
    createdAt: 1,
    startedAt: null,
    finishedAt: null,
    attempts: 0,
    maxAttempts: 3,
    cancelRequested: false,
    progress: null,
    result: null,
    error: null,
    links: links(id),
    ...over,
  };
}

let server: TestServer;
let client: RunnerClient;
beforeEach(async () => {
  server = await startServer();
  client = new RunnerClient({
    baseUrl: server.url,
    apiKey: 'secret-key',
    timeoutMs: 2000,
    reconnectDelayMs: 10,
    maxReconnects: 3,
  });
});
afterEach(async () => {
  await server.close();
});

describe('requests', () => {
  test('submitTrain posts the payload with the bearer key and the idempotency key; 202 body returned', async () => {
    const id = randomUUID();
    server.route('POST /v1/jobs/train', (_req, res) => sendJson(res, 202, { id, state: 'queued', links: links(id) }));
    const sub = await client.submitTrain(CANONICAL_TRAIN_EXAMPLE, { idempotencyKey: 'k-1' });
    expect(sub).toEqual({ id, state: 'queued', links: links(id) });
    const [req] = server.requests;
    expect(req.headers.authorization).toBe('Bearer secret-key');
    expect(req.headers['idempotency-key']).toBe('k-1');
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual(CANONICAL_TRAIN_EXAMPLE);
  });

  test("the job's name, tags and priority go beside the payload's fields; bad ones are refused before sending", async () => {
    const id = randomUUID();
    server.route('POST /v1/jobs/train', (_req, res) => sendJson(res, 202, { id, state: 'queued', links: links(id) }));
    await client.submitTrain(CANONICAL_TRAIN_EXAMPLE, { name: 'sweep', tags: { project: 'sine' }, priority: 2 });
    expect(JSON.parse(server.requests[0].body)).toEqual({
      ...CANONICAL_TRAIN_EXAMPLE,
      name: 'sweep',
      tags: { project: 'sine' },
      priority: 2,
    });
    const err = await client.submitTrain(CANONICAL_TRAIN_EXAMPLE, { priority: 11 }).catch((e: unknown) => e);
    expect((err as PayloadValidationError).fields).toEqual(['priority']);
    expect(server.requests).toHaveLength(1);
  });

  test('submitInfer with wait=true returns the result', async () => {
    const id = randomUUID();
    const result = { outputs: [[[1]]], hN: [[[0.5]]], cN: [[[0.7]]], backend: 'cpu', gpu: false, elapsedMs: 3 };
    server.route('POST /v1/jobs/infer', (req, res) =>
      req.query.get('wait') === 'true'
        ? sendJson(res, 200, { id, state: 'completed', result, error: null, links: links(id) })
        : apiError(res, 400, 'invalid_request', 'no wait'),
    );
    const sub = await client.submitInfer({ modelJobId: randomUUID(), inputs: [[[0.1], [0.2]]] }, { wait: true });
    expect(sub).toMatchObject({ id, state: 'completed', result });
    expect(server.requests[0].headers['idempotency-key']).toBeUndefined();
  });

  test('get, list with query, cancel, workers, health; a path prefix of baseUrl is kept', async () => {
    const id = randomUUID();
    const prefixed = new RunnerClient({ baseUrl: `${server.url}/runner`, timeoutMs: 2000 });
    server.route('GET /runner/v1/jobs/*', (_req, res) => sendJson(res, 200, view(id)));
    server.route('GET /runner/v1/jobs', (_req, res) => sendJson(res, 200, { items: [view(id)], nextCursor: 'c2' }));
    server.route('DELETE /runner/v1/jobs/*', (_req, res) =>
      sendJson(res, 200, { id, state: 'cancelled', cancelRequested: false }),
    );
    server.route('GET /runner/v1/workers', (_req, res) =>
      sendJson(res, 200, {
        items: [
          {
            id: 'w1',
            backend: 'wasm',
            gpu: false,
            device: 'wasm',
            host: 'h',
            pid: 1,
            queues: ['cpu', 'any'],
            currentJobId: null,
            startedAt: 1,
            at: 2,
          },
        ],
      }),
    );
    server.route('GET /runner/health', (_req, res) => sendJson(res, 503, { status: 'unavailable', redis: 'down' }));
    expect((await prefixed.get(id)).id).toBe(id);
    expect(await prefixed.list({ state: 'running', limit: 5, cursor: 'c1' })).toEqual({
      items: [view(id)],
      nextCursor: 'c2',
    });
    expect(await prefixed.cancel(id)).toEqual({ id, state: 'cancelled', cancelRequested: false });
    expect((await prefixed.workers()).map((w) => w.id)).toEqual(['w1']);
    expect(await prefixed.health()).toEqual({ status: 'unavailable', redis: 'down' });
    const listReq = server.requests[1];
    expect([listReq.path, listReq.query.get('state'), listReq.query.get('limit'), listReq.query.get('cursor')]).toEqual(
      ['/runner/v1/jobs', 'running', '5', 'c1'],
    );
    await prefixed.list({ type: 'train', name: 'sweep', tags: { project: 'sine', lr: '0.1' }, since: new Date(5) });
    const searchReq = server.requests[server.requests.length - 1];
    expect([
      searchReq.query.get('type'),
      searchReq.query.get('name'),
      searchReq.query.getAll('tag'),
      searchReq.query.get('since'),
    ]).toEqual(['train', 'sweep', ['project:sine', 'lr:0.1'], '5']);
    server.requests.pop();
    expect(server.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      `GET /runner/v1/jobs/${id}`,
      'GET /runner/v1/jobs',
      `DELETE /runner/v1/jobs/${id}`,
      'GET /runner/v1/workers',
      'GET /runner/health',
    ]);
    expect(server.requests[0].headers.authorization).toBeUndefined(); // no apiKey, no header
  });
});

describe('errors', () => {
  test('an invalid payload is refused before sending, naming each bad field', async () => {
    const bad = { ...CANONICAL_TRAIN_EXAMPLE, training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 0 }, extra: 1 };
    const err = await client.submitTrain(bad as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PayloadValidationError);
    expect((err as PayloadValidationError).fields.sort()).toEqual(['extra', 'training.epochs']);
    expect((err as Error).message).toMatch(/^invalid train payload: .*training\.epochs/);
    const inf = await client.submitInfer({ inputs: [[[1]]] }).catch((e: unknown) => e);
    expect((inf as PayloadValidationError).issues[0]).toMatchObject({
      path: '',
      expected: 'exactly one of modelJobId, model',
    });
    expect(server.requests).toHaveLength(0);
  });

  test("a 400 from the server (its limits are tighter) maps to RunnerApiError with the server's issues", async () => {
    const issues = [
      { path: 'model.hiddenSize', code: 'too_big', message: 'Too big', expected: '<= 8', received: '16' },
    ];
    server.route('POST /v1/jobs/train', (_req, res) => apiError(res, 400, 'invalid_request', 'invalid body', issues));
    const err = (await client.submitTrain(CANONICAL_TRAIN_EXAMPLE).catch((e: unknown) => e)) as RunnerApiError;
    expect(err).toBeInstanceOf(RunnerApiError);
    expect([err.status, err.code, err.detail, err.issues, err.fields]).toEqual([
      400,
      'invalid_request',
      'invalid body',
      issues,
      ['model.hiddenSize'],
    ]);
    expect(err.message).toBe('POST /v1/jobs/train: 400 invalid_request: invalid body (model.hiddenSize: Too big)');
  });

  test("404, 401, and a body that is not the api's (a proxy page)", async () => {
    server.route('GET /v1/jobs/*', (req, res) =>
      req.path.endsWith('/nope')
        ? apiError(res, 404, 'not_found', 'job nope not found')
        : sendJson(res, 401, { message: 'missing key' }),
    );
    server.route('GET /v1/workers', (_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>Bad Gateway</html>');
    });
    await expect(client.get('nope')).rejects.toMatchObject({
      name: 'RunnerApiError',
      status: 404,
      code: 'not_found',
      detail: 'job nope not found',
    });
    await expect(client.get('x')).rejects.toMatchObject({ status: 401, code: 'http_401', detail: 'missing key' });
    await expect(client.workers()).rejects.toMatchObject({
      status: 502,
      code: 'http_502',
      detail: '<html>Bad Gateway</html>',
    });
  });

  test("429 of the api's rate limit: code and Retry-After", async () => {
    server.route('GET /v1/jobs/*', (_req, res) => {
      res.setHeader('Retry-After', '3');
      apiError(
        res,
        429,
        'rate_limited',
        'rate limit of 1000 requests/s (burst 2000) for tenant acme exceeded; retry after 3 s',
      );
    });
    await expect(client.get('x')).rejects.toMatchObject({
      name: 'RunnerApiError',
      status: 429,
      code: 'rate_limited',
      retryAfterMs: 3000,
    });
    server.route('GET /v1/workers', (_req, res) => apiError(res, 401, 'unauthorized', 'the API key is not valid'));
    await expect(client.workers()).rejects.toMatchObject({ status: 401, code: 'unauthorized', retryAfterMs: null });
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:10 GMT', Date.parse('Wed, 21 Oct 2015 07:28:00 GMT'))).toBe(10_000);
    expect(parseRetryAfter('soon')).toBeNull();
  });

  test('no answer in timeoutMs, and a refused connection, are RunnerConnectionError', async () => {
    server.route('GET /v1/jobs/*', () => new Promise(() => {})); // never answers
    const fast = new RunnerClient({ baseUrl: server.url, timeoutMs: 150 });
    await expect(fast.get('slow')).rejects.toMatchObject({ name: 'RunnerConnectionError', timedOut: true });
    const closed = await startServer();
    const url = closed.url;
    await closed.close();
    const err = await new RunnerClient({ baseUrl: url }).get('x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunnerConnectionError);
    expect(err).toMatchObject({ timedOut: false });
  });
});

describe('events', () => {
  test('a dropped stream is resumed with Last-Event-ID: every event once, in order, ending at the terminal state', async () => {
    const id = randomUUID();
    const history: StoredEvent[] = [
      { id: '1-0', event: state('queued') },
      { id: '2-0', event: state('running', { attempt: 1 }) },
      { id: '3-0', event: metric(1) },
      { id: '4-0', event: metric(2) },
      { id: '5-0', event: state('completed', { result: trainResult }) },
    ];
    let connection = 0;
    server.route(`GET /v1/jobs/${id}/events`, (req, res) => {
      connection++;
      const after = req.headers['last-event-id'];
      const rest = after ? history.slice(history.findIndex((e) => e.id === after) + 1) : history;
      sseHead(res, 5);
      if (connection === 1) {
        // Two events, half of the third, then the connection is cut.
        for (const e of rest.slice(0, 2)) sseEvent(res, e.id, e.event);
        res.write(`id: ${rest[2].id}\ndata: {"type":"metr`);
        setTimeout(() => res.socket?.destroy(), 20);
      } else if (connection === 2) {
        sseEvent(res, rest[0].id, rest[0].event); // ends cleanly before the job did
        res.end();
      } else {
        for (const e of rest) sseEvent(res, e.id, e.event);
        // Left open: the client must stop at the terminal event by itself.
      }
    });
    const seen: StoredEvent[] = [];
    for await (const e of client.events(id)) seen.push(e);
    expect(seen).toEqual(history);
    const lastIds = server.requests
      .filter((r) => r.path.endsWith('/events'))
      .map((r) => r.headers['last-event-id'] ?? null);
    expect(lastIds).toEqual([null, '2-0', '3-0']);
    expect(
      server.requests.every(
        (r) => r.headers.accept === 'text/event-stream' && r.headers.authorization === 'Bearer secret-key',
      ),
    ).toBe(true);
  });

  test('lastEventId resumes; keep-alive comments and foreign messages are skipped; break closes the connection', async () => {
    const id = randomUUID();
    let closed = false;
    server.route(`GET /v1/jobs/${id}/events`, (_req, res) => {
      sseHead(res);
      res.write(': keep-alive\n\nevent: hello\ndata: not json\n\ndata: {"no":"type"}\n\n');
      sseEvent(res, '8-0', metric(8));
      sseEvent(res, '9-0', metric(9));
      res.on('close', () => (closed = true));
    });
    const seen: string[] = [];
    for await (const e of client.events(id, { lastEventId: '7-0' })) {
      seen.push(e.id);
      if (seen.length === 2) break;
    }
    expect(seen).toEqual(['8-0', '9-0']);
    expect(server.requests[0].headers['last-event-id']).toBe('7-0');
    await new Promise((r) => setTimeout(r, 50));
    expect(closed).toBe(true);
  });

  test('a stream that goes silent (half-open connection) is reopened after streamIdleTimeoutMs; a slow consumer is not', async () => {
    const id = randomUUID();
    let connection = 0;
    server.route(`GET /v1/jobs/${id}/events`, (req, res) => {
      connection++;
      sseHead(res, 5);
      if (connection === 1) {
        sseEvent(res, '1-0', metric(1));
        sseEvent(res, '2-0', metric(2)); // then silence, the socket left open
      } else {
        expect(req.headers['last-event-id']).toBe('2-0');
        sseEvent(res, '3-0', state('completed', { result: trainResult }));
      }
    });
    const idle = new RunnerClient({ baseUrl: server.url, reconnectDelayMs: 10, streamIdleTimeoutMs: 150 });
    const seen: string[] = [];
    for await (const e of idle.events(id)) {
      seen.push(e.id);
      if (e.id === '1-0') await new Promise((r) => setTimeout(r, 300)); // slower than the idle limit
    }
    expect(seen).toEqual(['1-0', '2-0', '3-0']);
    expect(connection).toBe(2);
  });

  test('a 404 ends at once; repeated 503s give up after maxReconnects; abort stops the iteration', async () => {
    server.route('GET /v1/jobs/*', (req, res) =>
      req.path.includes('/gone/')
        ? apiError(res, 404, 'not_found', 'no job')
        : apiError(res, 503, 'unavailable', 'redis down'),
    );
    await expect(client.events('gone').next()).rejects.toMatchObject({ status: 404 });
    expect(server.requests).toHaveLength(1);
    await expect(client.events('down').next()).rejects.toThrow(
      /4 connections in a row without an event .*503 unavailable/,
    );
    expect(server.requests).toHaveLength(5);

    const ctrl = new AbortController();
    server.route('GET /v1/jobs/live/events', (_req, res) => {
      sseHead(res);
      sseEvent(res, '1-0', metric(1));
    });
    const it = client.events('live', { signal: ctrl.signal });
    expect((await it.next()).value).toMatchObject({ id: '1-0' });
    const pending = it.next();
    ctrl.abort(new Error('stop'));
    await expect(pending).rejects.toThrow('stop');
  });
});

describe('waitForResult', () => {
  test('the result from the terminal event', async () => {
    server.route('GET /v1/jobs/j1/events', (_req, res) => {
      sseHead(res);
      sseEvent(res, '1-0', state('running'));
      setTimeout(() => sseEvent(res, '2-0', state('completed', { result: trainResult })), 30);
    });
    await expect(client.waitForResult<TrainResult>('j1')).resolves.toEqual(trainResult);
  });

  test('failed and cancelled jobs throw JobFailedError with the job error', async () => {
    const error = { code: 'diverged', message: 'non-finite loss', retryable: false, details: { epoch: 1, step: 9 } };
    server.route('GET /v1/jobs/j2/events', (_req, res) => {
      sseHead(res);
      sseEvent(res, '1-0', state('failed', { error }));
    });
    server.route('GET /v1/jobs/j2', (_req, res) =>
      sendJson(res, 200, view('j2', { state: 'failed', error: error as JobView['error'] })),
    );
    const err = (await client.waitForResult('j2').catch((e: unknown) => e)) as JobFailedError;
    expect(err).toBeInstanceOf(JobFailedError);
    expect([err.state, err.error?.code, err.job?.id]).toEqual(['failed', 'diverged', 'j2']);
  });

  test('falls back to polling when the stream is unusable', async () => {
    let polls = 0;
    server.route('GET /v1/jobs/j3/events', (_req, res) => apiError(res, 500, 'internal', 'boom'));
    server.route('GET /v1/jobs/j3', (_req, res) => {
      polls++;
      sendJson(res, 200, view('j3', polls < 3 ? { state: 'running' } : { state: 'completed', result: trainResult }));
    });
    await expect(client.waitForResult('j3', { pollIntervalMs: 10 })).resolves.toEqual(trainResult);
    expect(polls).toBe(3);
  });

  test('timeoutMs gives WaitTimeoutError with the last state seen', async () => {
    server.route('GET /v1/jobs/j4/events', (_req, res) => {
      sseHead(res);
      sseEvent(res, '1-0', state('running'));
    });
    const err = await client.waitForResult('j4', { timeoutMs: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WaitTimeoutError);
    expect(err).toMatchObject({ jobId: 'j4', lastState: 'running' });
  });
});

describe('artifacts and datasets', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'client-artifacts-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('list, download as bytes, save one or all to files', async () => {
    const files: Record<string, Buffer> = {
      'model.safetensors': Buffer.from([0, 1, 2, 255, 254]),
      'state.json': Buffer.from('{"h_n":[]}'),
    };
    server.route('GET /v1/jobs/j5/artifacts', (_req, res) =>
      sendJson(res, 200, {
        jobId: 'j5',
        items: Object.entries(files).map(([name, b]) => ({
          name,
          size: b.length,
          modifiedAt: 1,
          url: `/v1/jobs/j5/artifacts/${name}`,
        })),
      }),
    );
    server.route('GET /v1/jobs/j5/artifacts/*', (req, res) => {
      const b = files[decodeURIComponent(req.path.split('/').pop()!)];
      if (!b) return apiError(res, 404, 'not_found', 'no artifact');
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.end(b);
    });
    expect((await client.listArtifacts('j5')).items.map((a) => a.name)).toEqual(['model.safetensors', 'state.json']);
    expect([...(await client.downloadArtifact('j5', 'model.safetensors'))]).toEqual([0, 1, 2, 255, 254]);
    const saved = await client.saveArtifacts('j5', join(dir, 'out'));
    expect(saved.map((s) => s.bytes)).toEqual([5, 10]);
    expect(await readFile(join(dir, 'out', 'state.json'), 'utf8')).toBe('{"h_n":[]}');
    await expect(client.saveArtifact('j5', 'metrics.csv', join(dir, 'metrics.csv'))).rejects.toMatchObject({
      status: 404,
    });
    expect(await readdir(dir)).toEqual(['out']); // no partial file left
    await expect(client.downloadArtifact('j5', '../etc/passwd')).rejects.toThrow(/artifact name/);
  });

  test('uploadDataset validates, then posts JSON; CSV goes as text/csv', async () => {
    const meta = {
      id: randomUUID(),
      samples: 1,
      seqLen: 2,
      inputSize: 1,
      targetShape: [1, 1],
      hasLengths: false,
      format: 'json',
      bytes: 20,
      createdAt: 1,
    };
    server.route('POST /v1/datasets', (_req, res) => sendJson(res, 201, meta));
    expect(await client.uploadDataset({ x: [[[1], [2]]], y: [[3]] })).toEqual(meta);
    await expect(client.uploadDataset({ x: [[[1], [2]]], y: [[3]], extra: true } as never)).rejects.toMatchObject({
      fields: ['extra'],
    });
    await client.uploadDatasetCsv('sample,t,x0,y0\n0,0,1,3\n');
    expect(server.requests.map((r) => r.headers['content-type'])).toEqual(['application/json', 'text/csv']);
  });
});
