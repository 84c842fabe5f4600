// Artifacts, datasets, workers, health, docs, headers and the process itself, against the real api
// process and the real Redis.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  HEARTBEAT_TTL_MS,
  redisKeys,
  type JobData,
  type WorkerHeartbeat,
} from '@relu-lstm/jobs';
import { ACTIVATIONS } from '@relu-lstm/lstm/config';
import { MAIN, REDIS_URL, dropPrefix, http, startApi, type ApiProcess } from './harness';

let api: ApiProcess;
let redis: Redis;

const canonical = (): any => JSON.parse(JSON.stringify(CANONICAL_TRAIN_EXAMPLE));
const get = (path: string) => http(api.url, 'GET', path);

beforeAll(async () => {
  api = await startApi({ DATASET_BODY_LIMIT: '256kb' });
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
});

afterAll(async () => {
  const code = await api?.stop();
  if (redis) {
    await dropPrefix(redis, api.prefix);
    await redis.quit();
  }
  expect(code).toBe(0);
});

describe('health, headers, errors, docs', () => {
  test('GET /health is 200 with Redis up; responses carry helmet headers', async () => {
    const r = await get('/health');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ status: 'ok', redis: 'up' });
    expect(r.headers['x-content-type-options']).toBe('nosniff');
    expect(r.headers['x-frame-options']).toBe('SAMEORIGIN');
    expect(r.headers['x-powered-by']).toBeUndefined();
  });

  test('unknown routes are 404 with an error body and no stack', async () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['POST', '/v1/jobs/nope'],
      ['PUT', '/v1/jobs'],
    ] as const) {
      const r = await http(api.url, method, path);
      expect(r.status).toBe(404);
      expect(r.json).toEqual({ error: { code: 'not_found', message: expect.any(String) } });
    }
  });

  test('GET /docs/openapi.json serves OpenAPI 3.1 generated from the zod schemas', async () => {
    const r = await get('/docs/openapi.json');
    expect(r.status).toBe(200);
    expect(r.json.openapi).toBe('3.1.0');
    const train = r.json.components.schemas.TrainPayload;
    expect(train.additionalProperties).toBe(false);
    expect(Object.keys(train.properties)).toEqual(
      expect.arrayContaining(['model', 'data', 'training', 'device', 'stateInput', 'initialState', 'fromJob']),
    );
    // The library's one list, as the running api publishes it (a new activation appears here unedited).
    expect(train.properties.model.properties.activation.enum).toEqual([...ACTIVATIONS]);
    expect(train.required).toEqual(expect.arrayContaining(['model', 'data', 'training']));
    for (const p of [
      '/v1/jobs/train',
      '/v1/jobs/infer',
      '/v1/jobs',
      '/v1/jobs/{id}',
      '/v1/jobs/{id}/events',
      '/v1/jobs/{id}/artifacts',
      '/v1/jobs/{id}/artifacts/{name}',
      '/v1/datasets',
      '/v1/workers',
      '/health',
    ]) {
      expect(r.json.paths[p]).toBeDefined();
    }
  });

  test('GET /docs is Swagger UI over that document, served locally under the CSP', async () => {
    const page = await get('/docs');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    // Every script and style it loads comes from this api (no CDN), and none is inline.
    const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThanOrEqual(3);
    for (const ref of refs) {
      expect(ref).toMatch(/^\/docs\/assets\//);
      expect((await get(ref)).status).toBe(200);
    }
    expect(page.text).not.toMatch(/<script>[^<]/);
    const init = await get('/docs/assets/docs-ui.js');
    expect(init.text).toContain("fetch('/docs/openapi.json'");
    expect((await get('/docs/assets/swagger-ui-bundle.js')).text.length).toBeGreaterThan(500_000);
    expect((await get('/docs/assets/index.html')).status).toBe(404);
  });
});

describe('artifacts', () => {
  test('listing and downloading files the worker left; names are checked', async () => {
    const { id } = (await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE })).json;
    expect((await get(`/v1/jobs/${id}/artifacts`)).json).toEqual({ jobId: id, items: [] });
    const dir = join(api.artifactDir, id);
    await mkdir(dir, { recursive: true });
    const state = JSON.stringify({ h_n: [[[0.1]]], c_n: [[[0.2]]] });
    await writeFile(join(dir, 'state.json'), state);
    await writeFile(join(dir, 'model.safetensors'), Buffer.from([0, 1, 2, 3, 250]));
    await writeFile(join(dir, 'metrics.csv'), 'epoch,step,loss\n0,1,0.5\n');
    await writeFile(join(dir, '.model.safetensors.abc.tmp'), 'partial'); // a write in progress

    const list = await get(`/v1/jobs/${id}/artifacts`);
    expect(list.status).toBe(200);
    expect(list.json.items.map((a: { name: string; size: number; url: string }) => [a.name, a.size, a.url])).toEqual([
      ['metrics.csv', 24, `/v1/jobs/${id}/artifacts/metrics.csv`],
      ['model.safetensors', 5, `/v1/jobs/${id}/artifacts/model.safetensors`],
      ['state.json', state.length, `/v1/jobs/${id}/artifacts/state.json`],
    ]);

    const s = await get(`/v1/jobs/${id}/artifacts/state.json`);
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toMatch(/^application\/json/);
    expect(s.headers['content-disposition']).toBe('attachment; filename="state.json"');
    expect(s.text).toBe(state);
    const m = await get(`/v1/jobs/${id}/artifacts/model.safetensors`);
    expect(m.headers['content-type']).toBe('application/octet-stream');
    expect(m.headers['content-length']).toBe('5');

    expect((await get(`/v1/jobs/${id}/artifacts/config.json`)).status).toBe(404);
    // (A literal '..' segment never arrives: URLs resolve it before sending.)
    for (const bad of ['..%2F..%2F..%2Fetc%2Fpasswd', '.model.safetensors.abc.tmp', '%2Fetc%2Fpasswd', 'a%5C..%5Cb']) {
      const r = await get(`/v1/jobs/${id}/artifacts/${bad}`);
      expect([400, 404]).toContain(r.status);
      expect(r.json.error).toBeDefined();
    }
    expect((await get(`/v1/jobs/${id}/artifacts/..%2F..%2F..%2Fetc%2Fpasswd`)).status).toBe(400);
    expect((await get(`/v1/jobs/${randomUUID()}/artifacts`)).status).toBe(404);
    expect((await get(`/v1/jobs/${randomUUID()}/artifacts/state.json`)).status).toBe(404);
  });
});

describe('artifacts of a published set', () => {
  test("the api lists and serves the published attempt's objects only: never a stale or unpublished stage", async () => {
    const { id } = (await http(api.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE })).json;
    const keys = redisKeys(api.prefix);
    const dir = join(api.artifactDir, id);
    // Two attempts staged their sets (a fenced-off one, and the lock holder); a plain checkpoint.
    for (const [stage, bytes] of [
      ['stale', 'stale-model'],
      ['holder', 'holder-model'],
    ]) {
      await mkdir(join(dir, `.stage-${stage}`), { recursive: true });
      await writeFile(join(dir, `.stage-${stage}`, 'model.safetensors'), bytes);
    }
    await writeFile(join(dir, '.stage-stale', 'stale-only.json'), '{}');
    await writeFile(join(dir, 'checkpoint.safetensors'), 'ckpt');
    const names = async () =>
      (await get(`/v1/jobs/${id}/artifacts`)).json.items.map((a: { name: string }) => a.name) as string[];
    // Nothing published yet: only the plain object shows; no staged one is reachable.
    expect(await names()).toEqual(['checkpoint.safetensors']);
    expect((await get(`/v1/jobs/${id}/artifacts/model.safetensors`)).status).toBe(404);
    expect((await get(`/v1/jobs/${id}/artifacts/stale-only.json`)).status).toBe(404);
    // The holder's set is recorded (what the worker's fencing step writes): it alone is served.
    const record = { stage: 'holder', names: ['model.safetensors'], layout: 'attempt' };
    await redis.set(keys.published(id), JSON.stringify(record));
    expect(await names()).toEqual(['model.safetensors']);
    expect((await get(`/v1/jobs/${id}/artifacts/model.safetensors`)).text).toBe('holder-model');
    for (const n of ['stale-only.json', 'checkpoint.safetensors'])
      expect((await get(`/v1/jobs/${id}/artifacts/${n}`)).status).toBe(404);
  });
});

describe('datasets', () => {
  test('JSON upload, then a train job that uses it', async () => {
    const body = {
      x: [
        [
          [1, 2],
          [3, 4],
          [5, 6],
        ],
        [
          [7, 8],
          [9, 10],
          [11, 12],
        ],
      ],
      y: [[1], [2]],
      description: 'two pairs',
    };
    const r = await http(api.url, 'POST', '/v1/datasets', { body });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({
      samples: 2,
      seqLen: 3,
      inputSize: 2,
      targetShape: [2, 1],
      hasLengths: false,
      format: 'json',
      description: 'two pairs',
    });
    const { id } = r.json;
    expect(existsSync(join(api.datasetDir, `${id}.json`))).toBe(true);
    expect((await get(`/v1/datasets/${id}`)).json).toEqual(r.json);
    expect((await get(`/v1/datasets/${randomUUID()}`)).status).toBe(404);

    const train = canonical();
    train.model = { inputSize: 2, hiddenSize: 8, outputSize: 1, head: 'lastStep' };
    train.data = { datasetId: id };
    train.device = 'cpu';
    const ok = await http(api.url, 'POST', '/v1/jobs/train', { body: train });
    expect(ok.status).toBe(202);
    const q = new Queue<JobData>('cpu', { connection: { url: REDIS_URL }, prefix: api.prefix });
    try {
      const job = await q.getJob(ok.json.id);
      expect(job?.data.payload).toMatchObject({ data: { datasetId: id } });
    } finally {
      await q.close();
    }

    train.model = { inputSize: 3, hiddenSize: 8, outputSize: 1, head: 'manyToMany' };
    const bad = await http(api.url, 'POST', '/v1/jobs/train', { body: train });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues.map((i: { path: string }) => i.path).sort()).toEqual([
      'model.head',
      'model.inputSize',
    ]);

    // The validation split against the dataset's 2 samples, by the library's rule (0.6 leaves none to train).
    train.model = { inputSize: 2, hiddenSize: 8, outputSize: 1, head: 'lastStep' };
    train.training = { ...train.training, validationSplit: 0.6 };
    const split = await http(api.url, 'POST', '/v1/jobs/train', { body: train });
    expect(split.status).toBe(400);
    expect(split.json.error.issues).toEqual([
      expect.objectContaining({
        path: 'training.validationSplit',
        expected: 'a split leaving at least one of the 2 samples for training',
        received: '0.6',
      }),
    ]);
  });

  test('CSV upload with ragged sequences and one target per sequence', async () => {
    const csv = ['sample,step,x0,x1,y0', 'a,0,1,2,', 'b,0,5,6,', 'a,1,3,4,10', 'b,1,7,8,', 'b,2,9,9,20', ''].join('\n');
    const r = await http(api.url, 'POST', '/v1/datasets?description=ragged', {
      raw: csv,
      headers: { 'content-type': 'text/csv' },
    });
    expect(r.status).toBe(201);
    expect(r.json).toMatchObject({
      samples: 2,
      seqLen: 3,
      inputSize: 2,
      targetShape: [2, 1],
      hasLengths: true,
      format: 'csv',
      description: 'ragged',
    });
    const stored = JSON.parse(await readFile(join(api.datasetDir, `${r.json.id}.json`), 'utf8'));
    expect(stored).toEqual({
      x: [
        [
          [1, 2],
          [3, 4],
          [0, 0],
        ],
        [
          [5, 6],
          [7, 8],
          [9, 9],
        ],
      ],
      y: [[10], [20]],
      lengths: [2, 3],
    });
  });

  test('bad uploads: field paths, CSV lines, 413, 415', async () => {
    const bad = await http(api.url, 'POST', '/v1/datasets', { body: { x: [[[1], [2]]], y: [[1], [2]] } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues[0]).toMatchObject({ path: 'y', expected: 'shape [1, O]' });
    const csv = await http(api.url, 'POST', '/v1/datasets', {
      raw: 'sample,step,x0,y0\na,0,1,2\na,1,oops,3\n',
      headers: { 'content-type': 'text/csv' },
    });
    expect(csv.status).toBe(400);
    expect(csv.json.error.issues[0]).toMatchObject({ path: 'line 3.x0', received: '"oops"' });
    const big = await http(api.url, 'POST', '/v1/datasets', {
      body: {
        x: Array.from({ length: 8000 }, () => [
          [Math.random(), Math.random()],
          [Math.random(), Math.random()],
        ]),
        y: [],
      },
    });
    expect(big.status).toBe(413);
    expect(big.json.error.code).toBe('payload_too_large');
    const xml = await http(api.url, 'POST', '/v1/datasets', {
      raw: '<x/>',
      headers: { 'content-type': 'application/xml' },
    });
    expect(xml.status).toBe(415);
  });
});

describe('managed datasets: listing, deleting, the per-tenant quota', () => {
  let quoted: ApiProcess;
  const small = { x: [[[1], [2]]], y: [[1]] };
  const on = (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) =>
    http(quoted.url, method, path, { body });
  const upload = (body: unknown = small) => on('POST', '/v1/datasets', body);

  beforeAll(async () => {
    quoted = await startApi({ MAX_DATASETS_PER_TENANT: '3', MAX_DATASET_BYTES_PER_TENANT: '1kb' });
  });
  afterAll(async () => {
    const code = await quoted?.stop();
    if (redis) await dropPrefix(redis, quoted.prefix);
    expect(code).toBe(0);
  });

  test('listed newest first in pages; over a bound: 413 (bytes) or 429 (count) naming it; delete frees room', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await upload();
      expect(r.status).toBe(201);
      ids.push(r.json.id);
    }
    // Over the byte bound: refused after reading, nothing kept, nothing counted.
    const big = { x: Array.from({ length: 100 }, (_, n) => [[n + 0.25], [n + 0.5]]), y: Array(100).fill([1]) };
    const tooBig = await upload(big);
    expect([tooBig.status, tooBig.json.error.code]).toEqual([413, 'payload_too_large']);
    expect(tooBig.json.error.message).toMatch(/MAX_DATASET_BYTES_PER_TENANT \(1024 bytes\)/);
    const used = (await Promise.all(ids.map((id) => on('GET', `/v1/datasets/${id}`)))).reduce(
      (n, d) => n + d.json.bytes,
      0,
    );
    expect(tooBig.json.error.message).toMatch(new RegExp(`datasets hold ${used} bytes; \\d+ more would pass`));
    const third = await upload();
    expect(third.status).toBe(201);
    ids.push(third.json.id);
    const full = await upload();
    expect([full.status, full.json.error.code]).toEqual([429, 'quota_exceeded']);
    expect(full.json.error.message).toContain('has 3 datasets, the most MAX_DATASETS_PER_TENANT (3) allows');
    expect((await readdir(quoted.datasetDir)).sort()).toEqual(ids.map((id) => `${id}.json`).sort());

    const first = await on('GET', '/v1/datasets?limit=2');
    expect(first.status).toBe(200);
    expect(first.json.items.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    expect(first.json.items[0]).toEqual(third.json);
    const rest = await on('GET', `/v1/datasets?limit=2&cursor=${first.json.nextCursor}`);
    expect([rest.json.items.map((d: { id: string }) => d.id), rest.json.nextCursor]).toEqual([[ids[0]], null]);
    const badCursor = await on('GET', '/v1/datasets?cursor=nope');
    expect([badCursor.status, badCursor.json.error.issues[0].path]).toEqual([400, 'cursor']);

    const del = await on('DELETE', `/v1/datasets/${ids[1]}`);
    expect([del.status, del.text]).toEqual([204, '']);
    expect((await on('GET', `/v1/datasets/${ids[1]}`)).status).toBe(404);
    expect((await on('DELETE', `/v1/datasets/${ids[1]}`)).status).toBe(404);
    expect((await on('DELETE', `/v1/datasets/${randomUUID()}`)).status).toBe(404);
    expect(existsSync(join(quoted.datasetDir, `${ids[1]}.json`))).toBe(false);
    expect((await on('GET', '/v1/datasets')).json.items.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[0]]);
    expect((await upload()).status).toBe(201);
  });

  test('DELETE is refused with 409 naming the queued job that uses the dataset, until the job ends', async () => {
    for (const d of (await on('GET', '/v1/datasets?limit=100')).json.items) await on('DELETE', `/v1/datasets/${d.id}`);
    const ds = await upload();
    expect(ds.status).toBe(201);
    const train = canonical();
    train.model = { inputSize: 1, hiddenSize: 4, outputSize: 1, head: 'lastStep' };
    train.data = { datasetId: ds.json.id };
    train.device = 'gpu'; // no worker here: it stays queued
    const job = await on('POST', '/v1/jobs/train', train);
    expect(job.status).toBe(202);

    const refused = await on('DELETE', `/v1/datasets/${ds.json.id}`);
    expect([refused.status, refused.json.error.code]).toEqual([409, 'conflict']);
    expect(refused.json.error.message).toContain(job.json.id);
    expect((await on('GET', `/v1/datasets/${ds.json.id}`)).status).toBe(200);
    expect(existsSync(join(quoted.datasetDir, `${ds.json.id}.json`))).toBe(true);

    expect((await on('DELETE', `/v1/jobs/${job.json.id}`)).json.state).toBe('cancelled');
    expect((await on('DELETE', `/v1/datasets/${ds.json.id}`)).status).toBe(204);
    expect(existsSync(join(quoted.datasetDir, `${ds.json.id}.json`))).toBe(false);
    // A job naming the deleted dataset is refused as for one that never existed.
    const late = await on('POST', '/v1/jobs/train', train);
    expect([late.status, late.json.error.issues[0].path]).toEqual([400, 'data.datasetId']);
  });
});

describe('GET /v1/workers', () => {
  test('lists workers from live heartbeats only', async () => {
    const keys = redisKeys(api.prefix);
    const hb = (id: string): WorkerHeartbeat => ({
      id,
      backend: 'tensorflow',
      gpu: true,
      device: 'NVIDIA H100',
      host: 'gpu-box',
      pid: 4242,
      queues: ['gpu', 'any'],
      currentJobId: null,
      startedAt: Date.now() - 1000,
      at: Date.now(),
    });
    const live = hb(`w-${randomUUID()}`);
    const dead = hb(`w-${randomUUID()}`);
    await redis
      .multi()
      .set(keys.worker(live.id), JSON.stringify(live), 'PX', HEARTBEAT_TTL_MS)
      .zadd(keys.workers(), Date.now() + HEARTBEAT_TTL_MS, live.id)
      .set(keys.worker(dead.id), JSON.stringify(dead), 'PX', HEARTBEAT_TTL_MS)
      .zadd(keys.workers(), Date.now() - 1, dead.id)
      .exec();
    const r = await get('/v1/workers');
    expect(r.status).toBe(200);
    expect(r.json).toEqual({ items: [live] });
  });
});

describe('the process', () => {
  test('with Redis unreachable, /health and submissions answer 503 quickly', async () => {
    const down = await startApi({ REDIS_URL: 'redis://127.0.0.1:1' });
    try {
      let t0 = Date.now();
      const h = await http(down.url, 'GET', '/health');
      expect(h.status).toBe(503);
      expect(h.json).toEqual({ status: 'unavailable', redis: 'down' });
      expect(Date.now() - t0).toBeLessThan(1500);
      t0 = Date.now();
      const p = await http(down.url, 'POST', '/v1/jobs/train', { body: CANONICAL_TRAIN_EXAMPLE });
      expect(p.status).toBe(503);
      expect(p.json.error.code).toBe('unavailable');
      expect(Date.now() - t0).toBeLessThan(1500);
      expect((await http(down.url, 'GET', `/v1/jobs/${randomUUID()}`)).status).toBe(503);
    } finally {
      expect(await down.stop()).toBe(0);
    }
  });

  test('an invalid environment stops start-up with a message naming the variable', async () => {
    const child = spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? '', PORT: 'eighty', QUEUE_PREFIX: 'a:b' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(2);
    expect(out).toContain('PORT');
    expect(out).toContain('QUEUE_PREFIX');
  });
});
