// The job cost budget at the api (issue 10): a job whose estimated engine memory (`estimateJobCost`)
// is over LIMIT_MAX_JOB_MEMORY_MB is a 400 naming the estimate and the bound, though each of its
// fields is within its own limit; nothing of it is queued.
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, DEFAULT_LIMITS } from '@relu-lstm/jobs';
import { REDIS_URL, http, openApiRedis, startApi, type ApiProcess, type ApiRedis } from './harness';

let api: ApiProcess;
let small: ApiProcess;
let behind: ApiRedis;
let redis: Redis;

beforeAll(async () => {
  [api, small] = await Promise.all([startApi(), startApi({ LIMIT_MAX_JOB_MEMORY_MB: '300' })]);
  behind = openApiRedis(api.prefix, REDIS_URL);
  redis = behind.redis;
});

afterAll(async () => {
  const codes = await Promise.all([api?.stop(), small?.stop()]);
  await behind?.close();
  expect(codes).toEqual([0, 0]);
});

const train = (model: Record<string, unknown>): any => ({
  ...CANONICAL_TRAIN_EXAMPLE,
  model: { ...CANONICAL_TRAIN_EXAMPLE.model, ...model },
});

const peakMb = (pid: number) =>
  Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('LIMIT_MAX_JOB_MEMORY_MB', () => {
  test(`hiddenSize 4096 with 16 layers (each within its limit) is a 400 naming the estimate and the bound (${DEFAULT_LIMITS.maxJobMemoryMb} MB)`, async () => {
    const started = performance.now();
    const r = await http(api.url, 'POST', '/v1/jobs/train', { body: train({ hiddenSize: 4096, numLayers: 16 }) });
    const ms = performance.now() - started;
    expect(r.status).toBe(400);
    const issue = r.json.error.issues[0];
    expect(issue).toMatchObject({
      path: 'model',
      code: 'too_big',
      expected: `an estimated engine memory of at most ${DEFAULT_LIMITS.maxJobMemoryMb} MB (LIMIT_MAX_JOB_MEMORY_MB)`,
    });
    expect(issue.received).toMatch(/^\d+ MB \(parameters \d+ MB/);
    expect(await redis.keys(`${api.prefix}:job:*`)).toEqual([]);
    console.log(
      `api: refused in ${ms.toFixed(0)} ms: ${issue.message}; api peak RSS ${peakMb(api.child.pid!).toFixed(0)} MB`,
    );
  });

  test('the canonical example fits the default budget', async () => {
    const r = await http(api.url, 'POST', '/v1/jobs/train', { body: train({}) });
    expect(r.status).toBe(202);
    await http(api.url, 'DELETE', `/v1/jobs/${r.json.id}`);
  });

  test('the bound is the configured one: a model of ~1.6 GB is refused under 300 MB and accepted under the default', async () => {
    const body = train({ hiddenSize: 1024, numLayers: 2 });
    const refused = await http(small.url, 'POST', '/v1/jobs/train', { body });
    expect(refused.status).toBe(400);
    expect(refused.json.error.issues[0].expected).toBe(
      'an estimated engine memory of at most 300 MB (LIMIT_MAX_JOB_MEMORY_MB)',
    );
    const accepted = await http(api.url, 'POST', '/v1/jobs/train', { body });
    expect(accepted.status).toBe(202);
    await http(api.url, 'DELETE', `/v1/jobs/${accepted.json.id}`);
  });

  test('an infer over the budget (its outputs and activations) is a 400 on inputs', async () => {
    const inputs = Array.from({ length: 24 }, () => Array.from({ length: 20_000 }, () => [0.5]));
    const body = { model: { config: { inputSize: 1, hiddenSize: 16, outputSize: 1 }, stateDict: {} }, inputs };
    const r = await http(small.url, 'POST', '/v1/jobs/infer', { body });
    expect(r.status).toBe(400);
    expect(r.json.error.issues[0]).toMatchObject({ path: 'inputs', code: 'too_big' });
  });
});
