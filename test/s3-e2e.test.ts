/**
 * The api and a worker (compiled, real processes) with ARTIFACT_DIR and DATASET_DIR on a real S3
 * server (s3rver, libs/jobs/test/s3-server.ts) and the real Redis: a dataset uploaded through the
 * api trains the canonical model, its artifacts (and their checkpoints before) live in the bucket
 * and download through the api byte for byte; a model registered from it is copied within the bucket
 * and serves inference by name; no process writes a local data directory.
 */
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { CANONICAL_TRAIN_EXAMPLE, PublishedSetSchema, type JobEvent } from '@relu-lstm/jobs';
import { RunnerClient } from '@relu-lstm/client';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness } from '../apps/worker/test/harness';
import { S3Server } from '../libs/jobs/test/s3-server';

jest.setTimeout(180_000);

const BUCKET = 'relu-lstm-e2e';
let server: S3Server;
let s3: S3Client;
let api: ApiProcess;
let harness: Harness;
let client: RunnerClient;
const prefix = `run-${randomUUID()}`;

beforeAll(async () => {
  server = await S3Server.start();
  await server.createBucket(BUCKET);
  s3 = server.client();
  const env = {
    ...server.env(),
    ARTIFACT_DIR: `s3://${BUCKET}/${prefix}/artifacts`,
    DATASET_DIR: `s3://${BUCKET}/${prefix}/datasets`,
  };
  harness = new Harness(env);
  api = await startApi({ QUEUE_PREFIX: harness.prefix, ...env });
  await harness.startReadyWorker();
  client = new RunnerClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
  s3?.destroy();
  await server?.stop();
});

async function keysUnder(under: string): Promise<string[]> {
  const out: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: BUCKET, Prefix: `${prefix}/${under}` })) {
    for (const o of page.Contents ?? []) out.push(o.Key!.slice(prefix.length + 1));
  }
  return out.sort();
}

async function collect(id: string): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const stored of client.events(id)) events.push(stored.event);
  return events;
}

test('a dataset uploaded to S3 trains; the artifacts are in the bucket and download through the api', async () => {
  const n = 64;
  const x = Array.from({ length: n }, (_, i) => Array.from({ length: 10 }, (_, t) => [Math.sin((i + t) / 5)]));
  const y = x.map((seq) => seq.map(([v]) => [v / 2])); // per step, as the canonical model's head
  const dataset = await client.uploadDataset({ x, y });
  const datasetKeys = await keysUnder('datasets/');
  expect(datasetKeys).toContain(`datasets/${dataset.id}.json`); // the manifest, and the fields' objects
  expect(datasetKeys.filter((k) => k.startsWith(`datasets/.parts/${dataset.id}.`)).length).toBe(2);

  const { id } = await client.submitTrain({ ...CANONICAL_TRAIN_EXAMPLE, data: { datasetId: dataset.id } });
  const events = await collect(id);
  const states = events.flatMap((e) => (e.type === 'state' ? [e.state] : []));
  expect(states[states.length - 1]).toBe('completed');

  const names = ['config.json', 'metrics.csv', 'model.safetensors', 'state.json'];
  expect((await client.listArtifacts(id)).items.map((a) => a.name).sort()).toEqual(names);
  // The published set only, where its attempt staged it: the checkpoints, other stages and temporaries are gone.
  const set = PublishedSetSchema.parse(JSON.parse((await harness.redis.get(harness.keys.published(id)))!));
  const stage = `artifacts/${id}/.stage-${set.stage}`;
  expect(await keysUnder(`artifacts/${id}/`)).toEqual(names.map((a) => `${stage}/${a}`));
  const stored = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${stage}/model.safetensors` }));
  const downloaded = await client.downloadArtifact(id, 'model.safetensors');
  expect(Buffer.compare(Buffer.from(downloaded), Buffer.from(await stored.Body!.transformToByteArray()))).toBe(0);
  expect(downloaded.byteLength).toBeGreaterThan(16 * 4);

  // Registered, the model's files are copied in the bucket under the version's own storage id and
  // serve inference by name (the worker reads them from the bucket).
  const v = await client.registerModel({ name: 's3-model', fromJob: id });
  const versionKeys = (await keysUnder('artifacts/model-')).map((k) => k.split('/').slice(2).join('/'));
  expect(versionKeys.sort()).toEqual(names);
  const byName = await client.submitInfer({ model: 's3-model@1', inputs: [[[0.1], [0.2]]] }, { wait: true });
  const byJob = await client.submitInfer({ modelJobId: id, inputs: [[[0.1], [0.2]]] }, { wait: true });
  expect(byName.state).toBe('completed');
  expect((byName as { result: unknown }).result).toMatchObject({
    outputs: (byJob as { result: { outputs: unknown } }).result.outputs,
  });
  expect(
    Buffer.compare(
      Buffer.from(await client.downloadModelFile('s3-model', v.version, 'model.safetensors')),
      Buffer.from(downloaded),
    ),
  ).toBe(0);

  // Neither the worker's nor the api's local directories were written.
  expect(existsSync(harness.artifactDir)).toBe(false);
  expect(existsSync(harness.datasetDir)).toBe(false);
  expect(existsSync(api.artifactDir)).toBe(false);
  expect(existsSync(api.datasetDir)).toBe(false);
});
