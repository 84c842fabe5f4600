// The model registry against the real api process and the real Redis: registering train jobs'
// models as numbered versions (race-free), reading and paging, downloads, aliases, deletion rules,
// the tenant's quota, and model references in infer and train payloads (resolved at submission and
// recorded on the job; errors are 400s naming the field).
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CANONICAL_TRAIN_EXAMPLE,
  ModelVersionViewSchema,
  ModelViewSchema,
  contract,
  type JobData,
} from '@relu-lstm/jobs';
import { runCli } from '@relu-lstm/client';
import { REDIS_URL, dropPrefix, http, openApiRedis, startApi, type ApiProcess, type ApiRedis } from './harness';

let api: ApiProcess;
let behind: ApiRedis;

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
const MODEL = contract.ModelSpec.parse(CANONICAL_TRAIN_EXAMPLE.model);
const call = (method: string, path: string, body?: unknown) => http(api.url, method, path, { body });

/** A train job (queued on gpu: no worker here) with the artifacts a completed one leaves. */
async function trainedJob(weights: number[]): Promise<string> {
  const r = await call('POST', '/v1/jobs/train', { ...clone(CANONICAL_TRAIN_EXAMPLE), device: 'gpu' });
  expect(r.status).toBe(202);
  const id = r.json.id as string;
  const dir = join(api.artifactDir, id);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'model.safetensors'), Buffer.from(weights));
  await writeFile(join(dir, 'config.json'), JSON.stringify({ jobId: id, model: MODEL }));
  await writeFile(join(dir, 'state.json'), '{"h_n":[]}');
  await writeFile(join(dir, 'metrics.csv'), 'epoch,loss\n0,1\n');
  return id;
}

const register = (name: string, fromJob: string, extra: Record<string, unknown> = {}) =>
  call('POST', '/v1/models', { name, fromJob, ...extra });

beforeAll(async () => {
  api = await startApi({ MAX_MODEL_VERSIONS_PER_TENANT: '12' });
  behind = openApiRedis(api.prefix, REDIS_URL);
});

afterAll(async () => {
  const code = await api?.stop();
  if (behind) {
    await dropPrefix(behind.redis, api.prefix);
    await behind.close();
  }
  expect(code).toBe(0);
});

describe('registering and reading', () => {
  let job1: string;
  let job2: string;

  beforeAll(async () => {
    job1 = await trainedJob([1, 2, 3]);
    job2 = await trainedJob([4, 5, 6, 7]);
  });

  test('versions are numbered 1, 2, ... per name; files are copied and download byte for byte', async () => {
    const v1 = await register('sine', job1, { description: 'first', tags: { team: 'a' } });
    expect(v1.status).toBe(201);
    expect(ModelVersionViewSchema.parse(v1.json)).toMatchObject({
      name: 'sine',
      version: 1,
      jobId: job1,
      description: 'first',
      tags: { team: 'a' },
      ref: 'sine@1',
      aliases: [],
      model: { inputSize: 1, hiddenSize: 16, head: MODEL.head },
    });
    expect(v1.json.files.map((f: { name: string }) => f.name)).toEqual([
      'model.safetensors',
      'config.json',
      'state.json',
      'metrics.csv',
    ]);
    const v2 = await register('sine', job2);
    expect([v2.status, v2.json.version]).toEqual([201, 2]);
    const file = await call('GET', v2.json.files[0].url);
    expect(file.status).toBe(200);
    expect(file.headers['content-disposition']).toBe('attachment; filename="model.safetensors"');
    expect([...Buffer.from(file.text, 'latin1')]).toEqual([4, 5, 6, 7]);
    // Stored under a storage id of its own, apart from the job's directory.
    expect((await readdir(api.artifactDir)).filter((d) => d.startsWith('model-')).length).toBeGreaterThanOrEqual(2);

    const model = await call('GET', '/v1/models/sine');
    expect(model.status).toBe(200);
    const view = ModelViewSchema.parse(model.json);
    expect([view.latestVersion, view.versions.map((v) => v.version), view.aliases]).toEqual([2, [1, 2], {}]);
    const one = await call('GET', '/v1/models/sine/versions/1');
    expect([one.status, one.json.description]).toEqual([200, 'first']);
  });

  test('concurrent registrations get distinct consecutive versions', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => register('race', job1)));
    expect(results.map((r) => r.status)).toEqual(Array(6).fill(201));
    expect(results.map((r) => r.json.version as number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('GET /v1/models pages newest first', async () => {
    const first = await call('GET', '/v1/models?limit=1');
    expect(first.status).toBe(200);
    expect(first.json.items.map((m: { name: string }) => m.name)).toEqual(['race']);
    expect(first.json.items[0]).toMatchObject({ latestVersion: 6, versionCount: 6 });
    const second = await call('GET', `/v1/models?limit=1&cursor=${first.json.nextCursor}`);
    expect(second.json.items.map((m: { name: string }) => m.name)).toEqual(['sine']);
    expect(second.json.nextCursor).toBeNull();
  });

  test('refusals name the field: bad names, a job that is not a trained model, missing things are 404', async () => {
    const bad = await register('no spaces', job1);
    expect(bad.status).toBe(400);
    expect(bad.json.error.issues[0].path).toBe('name');
    const missing = await register('x', randomUUID());
    expect([missing.status, missing.json.error.issues[0].path]).toEqual([400, 'fromJob']);
    const infer = await call('POST', '/v1/jobs/infer', { model: 'sine@1', inputs: [[[0.5]]], device: 'gpu' });
    const notTrain = await register('x', infer.json.id);
    expect([notTrain.status, notTrain.json.error.issues[0].message]).toEqual([400, expect.stringMatching(/infer job/)]);
    expect((await call('GET', '/v1/models/nope')).status).toBe(404);
    expect((await call('GET', '/v1/models/sine/versions/9')).status).toBe(404);
    expect((await call('GET', '/v1/models/sine/versions/1/artifacts/nope.bin')).status).toBe(404);
    expect((await call('GET', '/v1/models/sine/versions/x')).status).toBe(400);
  });

  test('the quota: past MAX_MODEL_VERSIONS_PER_TENANT a registration is 429 and copies nothing', async () => {
    // 2 (sine) + 6 (race) so far; fill to 12.
    for (let i = 0; i < 4; i++) expect((await register('fill', job1)).status).toBe(201);
    const before = (await readdir(api.artifactDir)).length;
    const full = await register('fill', job1);
    expect(full.status).toBe(429);
    expect(full.json.error).toMatchObject({ code: 'quota_exceeded' });
    expect(full.json.error.message).toContain('MAX_MODEL_VERSIONS_PER_TENANT (12)');
    expect((await readdir(api.artifactDir)).length).toBe(before);
    for (let v = 1; v <= 4; v++) expect((await call('DELETE', `/v1/models/fill/versions/${v}`)).status).toBe(204);
    expect((await call('GET', '/v1/models/fill')).status).toBe(404);
  });
});

describe('aliases, deletion, and references in payloads', () => {
  let job: string;
  beforeAll(async () => {
    job = await trainedJob([9]);
    for (let i = 0; i < 3; i++) expect((await register('svc', job)).status).toBe(201);
  });

  test('an alias points at a version; deleting that version is 409 until the alias moves', async () => {
    const set = await call('PUT', '/v1/models/svc/aliases/production', { version: 2 });
    expect([set.status, set.json]).toEqual([200, { name: 'svc', alias: 'production', version: 2 }]);
    expect((await call('PUT', '/v1/models/svc/aliases/production', { version: 7 })).status).toBe(404);
    expect((await call('PUT', '/v1/models/svc/aliases/latest', { version: 1 })).status).toBe(400);
    expect((await call('PUT', '/v1/models/svc/aliases/9lives', { version: 1 })).status).toBe(400);
    const v2 = await call('GET', '/v1/models/svc/versions/2');
    expect(v2.json.aliases).toEqual(['production']);
    const refused = await call('DELETE', '/v1/models/svc/versions/2');
    expect([refused.status, refused.json.error.message]).toEqual([409, expect.stringContaining('production')]);
    expect((await call('PUT', '/v1/models/svc/aliases/production', { version: 3 })).status).toBe(200);
    expect((await call('DELETE', '/v1/models/svc/versions/2')).status).toBe(204);
    expect((await call('GET', '/v1/models/svc/versions/2')).status).toBe(404);
    // Numbers are never reused while the model exists.
    expect((await register('svc', job)).json.version).toBe(4);
    expect((await call('DELETE', '/v1/models/svc/aliases/nope')).status).toBe(404);
  });

  test('infer `model` and train `from` resolve at submission; the job records the version', async () => {
    const infer = await call('POST', '/v1/jobs/infer', { model: 'svc@production', inputs: [[[0.5]]], device: 'gpu' });
    expect(infer.status).toBe(202);
    const view = await call('GET', `/v1/jobs/${infer.json.id}`);
    expect(view.json.modelVersion).toEqual({ name: 'svc', version: 3 });
    const queued = await behind.queues.gpu.getJob(infer.json.id);
    const data = queued!.data as JobData;
    expect(data.modelVersion).toMatchObject({ name: 'svc', version: 3, jobId: job });
    expect(data.modelVersion!.storageId).toMatch(/^model-/);

    const latest = await call('POST', '/v1/jobs/infer', { model: 'svc', inputs: [[[0.5]]], device: 'gpu' });
    expect((await call('GET', `/v1/jobs/${latest.json.id}`)).json.modelVersion).toEqual({ name: 'svc', version: 4 });
    const train = await call('POST', '/v1/jobs/train', {
      ...clone(CANONICAL_TRAIN_EXAMPLE),
      from: 'svc@1',
      device: 'gpu',
    });
    expect(train.status).toBe(202);
    expect((await call('GET', `/v1/jobs/${train.json.id}`)).json.modelVersion).toEqual({ name: 'svc', version: 1 });
  });

  test('a reference that does not resolve is a 400 naming the field', async () => {
    const cases: Array<[string, unknown, string, RegExp]> = [
      ['/v1/jobs/infer', { model: 'svc@staging', inputs: [[[0.5]]] }, 'model', /no alias staging/],
      ['/v1/jobs/infer', { model: 'svc@2', inputs: [[[0.5]]] }, 'model', /no version 2/],
      ['/v1/jobs/infer', { model: 'ghost', inputs: [[[0.5]]] }, 'model', /ghost does not exist/],
      ['/v1/jobs/infer', { model: 'svc@production', inputs: [[[0.5, 1]]] }, 'inputs', /svc@3 reads 1 features/],
      ['/v1/jobs/infer', { model: 'a b', inputs: [[[0.5]]] }, 'model', /name@<alias>/],
      ['/v1/jobs/train', { ...clone(CANONICAL_TRAIN_EXAMPLE), from: 'svc@nope' }, 'from', /no alias nope/],
      [
        '/v1/jobs/train',
        { ...clone(CANONICAL_TRAIN_EXAMPLE), model: { ...MODEL, hiddenSize: 8 }, from: 'svc' },
        'model.hiddenSize',
        /must match the model of model svc@4/,
      ],
      ['/v1/jobs/train', { ...clone(CANONICAL_TRAIN_EXAMPLE), from: 'svc', fromJob: job }, 'from', /not both/],
    ];
    for (const [path, body, field, message] of cases) {
      const r = await call('POST', path, body);
      expect([path, r.status]).toEqual([path, 400]);
      const issue = (r.json.error.issues as Array<{ path: string; message: string }>).find((i) => i.path === field);
      expect([field, issue?.message]).toEqual([field, expect.stringMatching(message)]);
    }
  });
});

describe('the CLI: relu-lstm models ...', () => {
  class Sink {
    text = '';
    write(t: string) {
      this.text += t;
      return true;
    }
  }
  const cli = async (...argv: string[]) => {
    const stdout = new Sink();
    const stderr = new Sink();
    const code = await runCli([...argv, '--url', api.url], { stdout, stderr, env: {}, cwd: api.artifactDir });
    return { code, out: stdout.text, err: stderr.text };
  };

  test('register, alias, show, list, download and delete', async () => {
    const job = await trainedJob([5, 6]);
    expect(await cli('models', 'register', 'cli', job, '--description', 'from the CLI', '--tag', 'k=v')).toEqual({
      code: 0,
      out: `cli@1 registered from job ${job}\n`,
      err: '',
    });
    expect((await cli('models', 'alias', 'cli', 'production', '1')).out).toBe('cli@production -> 1\n');
    const shown = await cli('models', 'show', 'cli@production', '--json');
    expect(JSON.parse(shown.out)).toMatchObject({ ref: 'cli@1', tags: { k: 'v' }, aliases: ['production'] });
    expect((await cli('models', 'list')).out).toMatch(/^cli {2}latest 1 {2}1 versions {2}production=1$/m);
    const dl = await cli('models', 'download', 'cli@production', '-o', 'dl');
    expect(dl.code).toBe(0);
    expect([...(await readFile(join(api.artifactDir, 'dl', 'model.safetensors')))]).toEqual([5, 6]);
    const refused = await cli('models', 'delete', 'cli@1');
    expect([refused.code, refused.err]).toEqual([1, expect.stringMatching(/409 conflict: .*production/)]);
    expect((await cli('models', 'unalias', 'cli', 'production')).code).toBe(0);
    expect((await cli('models', 'delete', 'cli@1')).code).toBe(0);
    expect((await cli('models', 'show', 'cli')).code).toBe(1);
    expect((await cli('models', 'frob')).code).toBe(2);
    expect((await cli('models', 'delete', 'cli')).code).toBe(2);
  });
});
