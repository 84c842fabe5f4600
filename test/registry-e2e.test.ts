/**
 * The model registry end to end, across the compiled api and a compiled worker against the real
 * Redis: a trained model is registered and aliased `production`; its job is then deleted as its
 * retention would (meta gone, then a sweep removes records and artifacts), and inference by
 * `name@production` still runs, with outputs equal to those from before. The worker keeps no model
 * cache here (MODEL_CACHE_SIZE=0), so every inference reads the version's files from the store.
 * Training `from` the registered version starts from its weights.
 */
import { CANONICAL_TRAIN_EXAMPLE, sweepRetention, type InferResult, type QueueName } from '@relu-lstm/jobs';
import { RunnerApiError, RunnerClient } from '@relu-lstm/client';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness } from '../apps/worker/test/harness';

jest.setTimeout(180_000);

let api: ApiProcess;
let harness: Harness;
let client: RunnerClient;

const TRAIN = {
  ...CANONICAL_TRAIN_EXAMPLE,
  data: { synthetic: { kind: 'sine', samples: 64, seqLen: 10 } },
  training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 1 },
} as const;
const INPUTS = [
  [[0.1], [0.2], [0.3]],
  [[-0.5], [0.4], [0.9]],
];

beforeAll(async () => {
  harness = new Harness();
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
  });
  await harness.startReadyWorker({ MODEL_CACHE_SIZE: '0' });
  client = new RunnerClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

async function infer(payload: Parameters<RunnerClient['submitInfer']>[0]): Promise<InferResult> {
  const res = await client.submitInfer(payload, { wait: true });
  if (res.state !== 'completed') throw new Error(`infer ended ${res.state}: ${JSON.stringify(res)}`);
  return (res as { result: InferResult }).result;
}

test("a registered model outlives its job: name@production serves the same outputs after the job's retention", async () => {
  const trainId = (await client.submitTrain(TRAIN)).id;
  await client.waitForResult(trainId);
  const before = await infer({ modelJobId: trainId, inputs: INPUTS });

  const v = await client.registerModel({ name: 'sine', fromJob: trainId, description: 'e2e' });
  expect([v.version, v.jobId]).toEqual([1, trainId]);
  await client.setModelAlias('sine', 'production', 1);
  const viaAlias = await infer({ model: 'sine@production', inputs: INPUTS });
  expect(viaAlias.outputs).toEqual(before.outputs);

  // The job goes as retention takes it: its meta expires, then a sweep removes the rest.
  await harness.redis.del(harness.keys.jobMeta(trainId));
  const report = await sweepRetention({
    redis: harness.redis,
    keys: harness.keys,
    removeQueueJob: async (q: QueueName, id: string) => {
      await harness.queue(q).remove(id);
    },
    artifacts: harness.artifacts,
    orphanGraceMs: 0,
  });
  expect(report.expired).toBeGreaterThanOrEqual(1);
  expect(await harness.artifacts.list(trainId)).toEqual([]);
  await expect(client.get(trainId)).rejects.toMatchObject({ status: 404 });
  await expect(client.submitInfer({ modelJobId: trainId, inputs: INPUTS })).rejects.toBeInstanceOf(RunnerApiError);

  const after = await infer({ model: 'sine@production', inputs: INPUTS });
  expect(after.outputs).toEqual(before.outputs);
  expect(after.hN).toEqual(before.hN);
  expect(after.cN).toEqual(before.cN);
  const file = await client.downloadModelFile('sine', 1, 'model.safetensors');
  expect(file.byteLength).toBe(v.files.find((f) => f.name === 'model.safetensors')!.size);

  // Training continues from the registered version's weights and final state.
  const cont = await client.submitTrain({ ...TRAIN, from: 'sine@production' });
  expect((await client.get(cont.id)).modelVersion).toEqual({ name: 'sine', version: 1 });
  await client.waitForResult(cont.id);
  const events = await harness.allEvents(cont.id);
  expect(events.some((e) => e.type === 'state' && e.state === 'completed')).toBe(true);
  const state = JSON.parse(Buffer.from(await client.downloadArtifact(cont.id, 'state.json')).toString('utf8'));
  expect(state.initialState).toBe('fromJob');
});
