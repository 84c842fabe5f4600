// A cancel that loses the race to completion (issue 10): DELETE answers 202 `cancelRequested` for a
// running job, the job then completes anyway; its view shows both facts, `completed` with
// `cancelRequested: true`. A stand-in BullMQ worker (in this process) completes the job only once
// the cancel flag is set, so the race is lost every time.
import { Worker, type Job } from 'bullmq';
import { redisKeys, type InferResult, type JobData } from '@relu-lstm/jobs';
import { REDIS_URL, http, openApiRedis, sleep, startApi, type ApiProcess, type ApiRedis } from './harness';

let api: ApiProcess;
let behind: ApiRedis;
let worker: Worker<JobData>;

beforeAll(async () => {
  api = await startApi();
  behind = openApiRedis(api.prefix, REDIS_URL);
  const keys = redisKeys(api.prefix);
  worker = new Worker<JobData>(
    'any',
    async (job: Job<JobData>): Promise<InferResult> => {
      while (!(await behind.redis.exists(keys.cancel(job.id!)))) await sleep(20);
      return { outputs: [[[1]]], hN: [[[0]]], cN: [[[0]]], backend: 'cpu', gpu: false, elapsedMs: 1 };
    },
    { connection: { url: REDIS_URL }, prefix: api.prefix },
  );
  await worker.waitUntilReady();
});

afterAll(async () => {
  await worker?.close();
  const code = await api?.stop();
  await behind?.close();
  expect(code).toBe(0);
});

test('a job that completes after its cancel was accepted is completed, with cancelRequested: true', async () => {
  const body = { model: { config: { inputSize: 1, hiddenSize: 1, outputSize: 1 }, stateDict: {} }, inputs: [[[1]]] };
  const submitted = await http(api.url, 'POST', '/v1/jobs/infer', { body });
  expect(submitted.status).toBe(202);
  const id = submitted.json.id;
  for (let i = 0; i < 200 && (await http(api.url, 'GET', `/v1/jobs/${id}`)).json.state !== 'running'; i++)
    await sleep(25);
  const cancel = await http(api.url, 'DELETE', `/v1/jobs/${id}`);
  expect(cancel.json).toEqual({ id, state: 'running', cancelRequested: true });
  let view = (await http(api.url, 'GET', `/v1/jobs/${id}`)).json;
  for (let i = 0; i < 200 && view.state !== 'completed'; i++) {
    await sleep(25);
    view = (await http(api.url, 'GET', `/v1/jobs/${id}`)).json;
  }
  expect(view).toMatchObject({ state: 'completed', cancelRequested: true, result: { outputs: [[[1]]] } });
});
