// Access control against the real api process and the real Redis: every route of ROUTES (checked
// against what Nest really maps) is walked as nobody, with a bad key, as the wrong tenant, with the
// admin key and as the owner. Another tenant's job, dataset, events and artifacts answer exactly
// like ids that do not exist.
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  HEARTBEAT_TTL_MS,
  contract,
  QUEUE_NAMES,
  redisKeys,
  type JobData,
  type QueueName,
  type WorkerHeartbeat,
} from '@relu-lstm/jobs';
import { sha256 } from '../src/http/api-keys';
import { ROUTES, type RouteSpec } from '../src/routes';
import {
  REDIS_URL,
  dropPrefix,
  http,
  readSse,
  startApi,
  type ApiProcess,
  type HttpResult,
  openApiRedis,
  type ApiRedis,
} from './harness';

const KEY = { alpha: `ka-${randomUUID()}`, beta: `kb-${randomUUID()}`, admin: `kadm-${randomUUID()}` };
const hex = (k: string) => sha256(k).toString('hex');
const bearer = (k: string) => ({ authorization: `Bearer ${k}` });

let api: ApiProcess;
let redis: Redis;
let queues: Record<QueueName, Queue<JobData>>;
let behind: ApiRedis;
/** alpha's resources. */
const own = {
  job: '',
  dataset: '',
  model: `m-${randomUUID()}`,
  sweep: '',
  session: '',
  artifact: 'model.safetensors',
};
type Ids = { job: string; dataset: string; model?: string; sweep: string; session: string };
const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
/** With keys configured (as in this file), `operator` routes take the admin key like `admin` ones. */
const adminOnly = (access: string | undefined) => access === 'admin' || access === 'operator';

const DATASET = {
  x: [
    [[1], [2], [3]],
    [[4], [5], [6]],
  ],
  y: [[1], [2]],
};

/** A sweep of two trials on gpu (no worker takes them). */
const SWEEP = {
  base: { ...clone(CANONICAL_TRAIN_EXAMPLE), device: 'gpu' },
  search: { grid: { 'model.hiddenSize': [8, 16] } },
  maxConcurrent: 1,
};

/** The request a route gets in this walk: ids filled in, a valid body for the POST routes. */
function requestFor(route: RouteSpec, ids: Ids): { path: string; body?: unknown; headers?: Record<string, string> } {
  const idOwner = route.owns === 'dataset' || route.owns === 'sweep' || route.owns === 'session' ? route.owns : 'job';
  const path = route.path
    .replace(':id', ids[idOwner])
    .replace(':model', ids.model ?? own.model)
    .replace(':version', '1')
    .replace(':alias', 'production')
    .replace(':name', own.artifact)
    .replace(':asset', 'docs-ui.js');
  if (route.path === '/v1/jobs/train') return { path, body: { ...clone(CANONICAL_TRAIN_EXAMPLE), device: 'gpu' } };
  if (route.path === '/v1/jobs/infer') return { path, body: { modelJobId: ids.job, inputs: [[[0.5]]], device: 'gpu' } };
  if (route.path === '/v1/datasets') return { path, body: DATASET };
  if (route.path === '/v1/models' && route.method === 'POST')
    return { path, body: { name: ids.model ?? own.model, fromJob: ids.job } };
  if (route.method === 'PUT') return { path, body: { version: 1 } };
  if (route.path === '/v1/sweeps') return { path, body: SWEEP };
  if (route.path === '/v1/sessions') return { path, body: { modelJobId: ids.job } };
  if (route.path === '/v1/sessions/:id/step') return { path, body: { seq: 0, inputs: [[[0.5]]] } };
  return { path };
}

function call(route: RouteSpec, ids: Ids, headers: Record<string, string> = {}): Promise<HttpResult> {
  const r = requestFor(route, ids);
  return http(api.url, route.method, r.path, { body: r.body, headers });
}

async function queued(): Promise<number> {
  let n = 0;
  for (const q of QUEUE_NAMES)
    n += Object.values(await queues[q].getJobCounts('waiting', 'active', 'delayed', 'prioritized')).reduce(
      (a, b) => a + b,
      0,
    );
  return n;
}

beforeAll(async () => {
  api = await startApi({
    API_KEYS: `alpha:${hex(KEY.alpha)},beta:${hex(KEY.beta)}`,
    ADMIN_KEY_HASH: hex(KEY.admin),
    RATE_LIMIT_ANON_RPS: '0', // this walk sends many keyless requests; limits have their own test
    SESSION_STEP_WAIT_MS: '300', // no worker serves the walk's session step
  });
  behind = openApiRedis(api.prefix, REDIS_URL);
  ({ redis, queues } = behind);

  // alpha's job (queued on gpu: no worker takes it), with artifacts as a worker leaves them, and a dataset.
  const job = await http(api.url, 'POST', '/v1/jobs/train', {
    body: { ...clone(CANONICAL_TRAIN_EXAMPLE), device: 'gpu' },
    headers: bearer(KEY.alpha),
  });
  expect(job.status).toBe(202);
  own.job = job.json.id;
  const dir = join(api.artifactDir, own.job);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, own.artifact), Buffer.from([1, 2, 3]));
  const model = contract.ModelSpec.parse(CANONICAL_TRAIN_EXAMPLE.model);
  await writeFile(join(dir, 'config.json'), JSON.stringify({ jobId: own.job, model }));
  const registered = await http(api.url, 'POST', '/v1/models', {
    body: { name: own.model, fromJob: own.job },
    headers: bearer(KEY.alpha),
  });
  expect(registered.status).toBe(201);
  const ds = await http(api.url, 'POST', '/v1/datasets', { body: DATASET, headers: bearer(KEY.alpha) });
  expect(ds.status).toBe(201);
  own.dataset = ds.json.id;
  const sweep = await http(api.url, 'POST', '/v1/sweeps', { body: SWEEP, headers: bearer(KEY.alpha) });
  expect(sweep.status).toBe(202);
  own.sweep = sweep.json.id;
  const session = await http(api.url, 'POST', '/v1/sessions', {
    body: { modelJobId: own.job },
    headers: bearer(KEY.alpha),
  });
  expect(session.status).toBe(201);
  own.session = session.json.id;
});

afterAll(async () => {
  const code = await api?.stop();
  await behind?.close();
  expect(code).toBe(0);
});

test('ROUTES lists exactly the routes the api maps (so none escapes this walk)', () => {
  const mapped = [
    ...api.output().matchAll(/Mapped \{(\S+), (GET|POST|DELETE|PUT|PATCH|HEAD|OPTIONS|ALL)\} route/g),
  ].map((m) => `${m[2]} ${m[1]}`);
  expect(mapped.length).toBeGreaterThan(10);
  // A mounted router (Bull Board) is no Nest route; the walk below covers it like the others.
  const routes = ROUTES.filter((r) => !r.mount);
  expect(mapped.sort()).toEqual(routes.map((r) => `${r.method} ${r.path}`).sort());
});

test('the OpenAPI document describes every route, with the key and refusals its access rule implies', async () => {
  const doc = (await http(api.url, 'GET', '/docs/openapi.json', { headers: bearer(KEY.alpha) })).json;
  const operations = Object.entries(
    doc.paths as Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>,
  ).flatMap(([p, ops]) =>
    Object.entries(ops).map(([m, op]) => ({ route: `${m.toUpperCase()} ${p.replace(/\{(\w+)\}/g, ':$1')}`, op })),
  );
  expect(operations.map((o) => o.route).sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
  expect(doc.security).toEqual([{ bearer: [] }]);
  expect(doc.components.securitySchemes.bearer).toMatchObject({ type: 'http', scheme: 'bearer' });
  const accessOfRoute = new Map(ROUTES.map((r) => [`${r.method} ${r.path}`, r.access]));
  const seen = operations.map(({ route, op }) => ({
    route,
    access: accessOfRoute.get(route),
    keyless: op.security?.length === 0,
    refusals: ['401', '403', '429'].filter((s) => s in op.responses),
  }));
  const expected = (access: string | undefined) =>
    access === 'public'
      ? { keyless: true, refusals: [] }
      : { keyless: false, refusals: adminOnly(access) ? ['401', '403', '429'] : ['401', '429'] };
  expect(seen).toEqual(seen.map((s) => ({ ...s, ...expected(s.access) })));
});

describe.each(ROUTES.map((r) => [`${r.method} ${r.path}`, r] as const))('%s', (_name, route) => {
  test('as nobody, with a bad key and with another scheme', async () => {
    const ids = { job: own.job, dataset: own.dataset, sweep: own.sweep, session: own.session };
    const before = await queued();
    for (const headers of [
      {} as Record<string, string>,
      bearer('not-a-key'),
      { authorization: `Basic ${Buffer.from(`alpha:${KEY.alpha}`).toString('base64')}` },
      { authorization: KEY.alpha },
    ]) {
      const r = await call(route, ids, headers);
      if (route.access === 'public') {
        expect(r.status).toBe(200);
        continue;
      }
      const expected = adminOnly(route.access) && headers.authorization?.startsWith('Bearer ') ? 403 : 401;
      expect([headers, r.status]).toEqual([headers, expected]);
      expect(r.json.error.code).toBe(expected === 401 ? 'unauthorized' : 'forbidden');
      if (expected === 401) expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(r.headers['x-content-type-options']).toBe('nosniff'); // helmet on refusals too
      expect(r.text).not.toMatch(/\n\s+at /); // no stack
    }
    expect(await queued()).toBe(before);
  });

  test('as the wrong tenant: what belongs to another tenant looks like what does not exist', async () => {
    const beta = bearer(KEY.beta);
    const r = await call(route, { job: own.job, dataset: own.dataset, sweep: own.sweep, session: own.session }, beta);
    if (adminOnly(route.access)) {
      expect([r.status, r.json.error.code]).toEqual([403, 'forbidden']);
      return;
    }
    if (route.owns) {
      const missing = randomUUID();
      const m = await call(
        route,
        { job: missing, dataset: missing, model: missing, sweep: missing, session: missing },
        beta,
      );
      expect(r.status).toBe(404);
      expect(m.status).toBe(404);
      const ownId = own[route.owns];
      expect(r.text.replaceAll(ownId, '<id>')).toBe(m.text.replaceAll(missing, '<id>'));
      expect(r.headers['content-type']).toBe(m.headers['content-type']);
      return;
    }
    if (route.path === '/v1/jobs/infer' || route.path === '/v1/sessions') {
      // modelJobId names alpha's job: beta is told it does not exist, as for a made-up id.
      const missing = randomUUID();
      const m = await call(route, { job: missing, dataset: missing, sweep: missing, session: missing }, beta);
      expect(r.status).toBe(400);
      expect(r.json.error.issues).toEqual([expect.objectContaining({ path: 'modelJobId', code: 'not_found' })]);
      expect(r.text.replaceAll(own.job, '<id>')).toBe(m.text.replaceAll(missing, '<id>'));
      return;
    }
    if (route.path === '/v1/models' && route.method === 'POST') {
      // fromJob names alpha's job: beta is told it does not exist, as for a made-up id.
      const missing = randomUUID();
      const m = await call(route, { job: missing, dataset: missing, sweep: missing, session: missing }, beta);
      expect(r.status).toBe(400);
      expect(r.json.error.issues).toEqual([expect.objectContaining({ path: 'fromJob', code: 'not_found' })]);
      expect(r.text.replaceAll(own.job, '<id>')).toBe(m.text.replaceAll(missing, '<id>'));
      return;
    }
    // Routes without an id work for beta, on beta's things only.
    expect(r.status).toBeLessThan(300);
    expect(r.text).not.toContain(own.job);
    expect(r.text).not.toContain(own.dataset);
    expect(r.text).not.toContain(own.model);
  });

  test('with the admin key', async () => {
    const r = await call(
      route,
      { job: own.job, dataset: own.dataset, sweep: own.sweep, session: own.session },
      bearer(KEY.admin),
    );
    if (adminOnly(route.access)) expect(r.status).toBe(200);
    else if (route.access === 'public') expect(r.status).toBe(200);
    else expect([r.status, r.json.error.code]).toEqual([401, 'unauthorized']); // not a tenant's key
  });

  test('as the owner', async () => {
    if (route.access !== 'tenant') return;
    const alpha = bearer(KEY.alpha);
    if (route.path === '/v1/jobs/:id/events') {
      const s = await readSse(api.url, `/v1/jobs/${own.job}/events`, { headers: alpha, timeoutMs: 1500 });
      expect(s.status).toBe(200);
      expect(s.events[0]?.data).toMatchObject({ type: 'state', state: 'queued' });
      return;
    }
    if (route.path === '/v1/sweeps/:id/events') {
      // Nothing has ended yet (its trials wait on gpu): the stream opens and stays open.
      const s = await readSse(api.url, `/v1/sweeps/${own.sweep}/events`, { headers: alpha, timeoutMs: 1000 });
      expect([s.status, s.events]).toEqual([200, []]);
      return;
    }
    if (route.method === 'DELETE' && route.owns === 'dataset') {
      // A dataset of its own: the walk's dataset stays for the routes and tests after this one.
      const ds = await http(api.url, 'POST', '/v1/datasets', { body: DATASET, headers: alpha });
      expect(
        (await call(route, { job: own.job, dataset: ds.json.id, sweep: own.sweep, session: own.session }, alpha))
          .status,
      ).toBe(204);
      expect((await http(api.url, 'GET', `/v1/datasets/${ds.json.id}`, { headers: alpha })).status).toBe(404);
      return;
    }
    if (route.method === 'DELETE' && route.path === '/v1/models/:model/versions/:version') {
      // A model of its own: the walk's model keeps its version 1 for the routes after this one.
      const name = `d-${randomUUID()}`;
      expect(
        (
          await call(
            ROUTES.find((x) => x.path === '/v1/models')!,
            { ...own, model: name },
            alpha,
          )
        ).status,
      ).toBe(201);
      expect((await call(route, { ...own, model: name }, alpha)).status).toBe(204);
      expect((await http(api.url, 'GET', `/v1/models/${name}`, { headers: alpha })).status).toBe(404);
      return;
    }
    const r = await call(route, { job: own.job, dataset: own.dataset, sweep: own.sweep, session: own.session }, alpha);
    if (route.path === '/v1/sessions/:id/step') {
      // Accepted and queued; no worker runs in this walk, so no answer comes in time.
      expect([r.status, r.json.error.code]).toEqual([503, 'unavailable']);
      return;
    }
    expect([r.status, r.text.slice(0, 300)]).toEqual([r.status < 300 ? r.status : 200, expect.any(String)]);
    if (route.path === '/v1/jobs/:id/artifacts/:name') expect([...Buffer.from(r.text, 'latin1')]).toEqual([1, 2, 3]);
    else if (route.owns === 'job') expect(r.text).toContain(own.job);
    else if (route.owns === 'dataset') expect(r.json.id).toBe(own.dataset);
    else if (route.owns === 'model' && route.method === 'GET' && !route.path.endsWith(':name'))
      expect(r.json.name).toBe(own.model);
    else if (route.owns === 'sweep') expect(r.json.id).toBe(own.sweep);
    else if (route.owns === 'session' && route.method === 'GET') expect(r.json.id).toBe(own.session);
  });
});

describe('tenants apart, beyond the walk', () => {
  test("beta's listing, train references and the workers list show nothing of alpha's", async () => {
    const beta = bearer(KEY.beta);
    const alphaList = await http(api.url, 'GET', '/v1/jobs?limit=100', { headers: bearer(KEY.alpha) });
    expect(alphaList.json.items.map((j: { id: string }) => j.id)).toContain(own.job);
    const betaList = await http(api.url, 'GET', '/v1/jobs?limit=100', { headers: beta });
    expect(betaList.json.items.length).toBeGreaterThan(0); // beta's own, from the walk
    expect(betaList.text).not.toContain(own.job);
    const alphaSets = await http(api.url, 'GET', '/v1/datasets?limit=100', { headers: bearer(KEY.alpha) });
    expect(alphaSets.json.items.map((d: { id: string }) => d.id)).toContain(own.dataset);
    const betaSets = await http(api.url, 'GET', '/v1/datasets?limit=100', { headers: beta });
    expect(betaSets.status).toBe(200);
    expect(betaSets.text).not.toContain(own.dataset);

    // A train payload naming alpha's dataset or alpha's job: "does not exist", as for made-up ids.
    const missing = randomUUID();
    const train = (data: unknown, fromJob?: string) => ({
      ...clone(CANONICAL_TRAIN_EXAMPLE),
      model: { inputSize: 1, hiddenSize: 16, outputSize: 1, head: 'lastStep' },
      data,
      ...(fromJob ? { fromJob } : {}),
    });
    for (const [theirs, made] of [
      [train({ datasetId: own.dataset }), train({ datasetId: missing })],
      [
        train({ synthetic: { kind: 'sine', samples: 8, seqLen: 5 } }, own.job),
        train({ synthetic: { kind: 'sine', samples: 8, seqLen: 5 } }, missing),
      ],
    ]) {
      const a = await http(api.url, 'POST', '/v1/jobs/train', { body: theirs, headers: beta });
      const b = await http(api.url, 'POST', '/v1/jobs/train', { body: made, headers: beta });
      expect(a.status).toBe(400);
      expect(a.json.error.issues.some((i: { code: string }) => i.code === 'not_found')).toBe(true);
      expect(a.text.replaceAll(own.dataset, '<id>').replaceAll(own.job, '<id>')).toBe(
        b.text.replaceAll(missing, '<id>'),
      );
    }

    // A worker running alpha's job: alpha sees the job id, beta sees the worker but not the id.
    const keys = redisKeys(api.prefix);
    const hb: WorkerHeartbeat = {
      id: `w-${randomUUID()}`,
      backend: 'cpu',
      gpu: false,
      device: 'cpu',
      host: 'h',
      pid: 1,
      queues: ['cpu', 'any'],
      currentJobId: own.job,
      startedAt: Date.now(),
      at: Date.now(),
    };
    await redis
      .multi()
      .set(keys.worker(hb.id), JSON.stringify(hb), 'PX', HEARTBEAT_TTL_MS)
      .zadd(keys.workers(), Date.now() + HEARTBEAT_TTL_MS, hb.id)
      .exec();
    const seenByAlpha = await http(api.url, 'GET', '/v1/workers', { headers: bearer(KEY.alpha) });
    const seenByBeta = await http(api.url, 'GET', '/v1/workers', { headers: beta });
    expect(seenByAlpha.json.items).toEqual([hb]);
    expect(seenByBeta.json.items).toEqual([{ ...hb, currentJobId: null }]);
  });

  test("beta cannot cancel alpha's job; alpha can", async () => {
    const job = await http(api.url, 'POST', '/v1/jobs/train', {
      body: { ...clone(CANONICAL_TRAIN_EXAMPLE), device: 'gpu' },
      headers: bearer(KEY.alpha),
    });
    const id = job.json.id as string;
    const d = await http(api.url, 'DELETE', `/v1/jobs/${id}`, { headers: bearer(KEY.beta) });
    expect([d.status, d.json.error.code]).toEqual([404, 'not_found']);
    expect((await http(api.url, 'GET', `/v1/jobs/${id}`, { headers: bearer(KEY.alpha) })).json).toMatchObject({
      state: 'queued',
      cancelRequested: false,
    });
    expect(await queues.gpu.getJob(id)).toBeDefined();
    const mine = await http(api.url, 'DELETE', `/v1/jobs/${id}`, { headers: bearer(KEY.alpha) });
    expect([mine.status, mine.json.state]).toEqual([200, 'cancelled']);
  });
});

describe('the admin view', () => {
  test('queues, workers and every tenant, for the admin key only', async () => {
    const r = await http(api.url, 'GET', '/v1/admin/overview', { headers: bearer(KEY.admin) });
    expect(r.status).toBe(200);
    expect(Object.keys(r.json.queues).sort()).toEqual([...QUEUE_NAMES].sort());
    expect(r.json.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['alpha', 'beta']);
    const alpha = r.json.tenants[0];
    expect(alpha.jobs).toBeGreaterThanOrEqual(2);
    expect(alpha.datasets).toBeGreaterThanOrEqual(1);
    expect(alpha.recent.map((j: { id: string }) => j.id)).toContain(own.job);
    expect(r.json.queues.gpu).toEqual(
      await queues.gpu.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'),
    );
    // Queued jobs carry a BullMQ priority (their fair-share turn): BullMQ counts them as prioritized.
    expect(r.json.queues.gpu.prioritized).toBeGreaterThan(0);
  });

  test('with no ADMIN_KEY_HASH the admin view is off for everyone', async () => {
    const other = await startApi({ API_KEYS: `alpha:${hex(KEY.alpha)}` });
    try {
      for (const k of [KEY.admin, KEY.alpha]) {
        const r = await http(other.url, 'GET', '/v1/admin/overview', { headers: bearer(k) });
        expect([r.status, r.json.error.code, r.json.error.message]).toEqual([
          403,
          'forbidden',
          expect.stringContaining('ADMIN_KEY_HASH'),
        ]);
      }
      expect((await http(other.url, 'GET', '/v1/admin/overview')).status).toBe(403);
    } finally {
      await other.stop();
      await dropPrefix(redis, other.prefix);
    }
  });
});
