/**
 * Two hosts, as far as one machine can play them: the api and two workers (compiled, real
 * processes), each in its own empty working directory, sharing nothing but the real Redis and a real
 * S3 server (s3rver, libs/jobs/test/s3-server.ts); ARTIFACT_DIR and DATASET_DIR are s3:// URLs.
 * The canonical train job survives a SIGKILL of the worker holding it (the other resumes from the
 * checkpoint in the bucket), its model serves an inference, an uploaded dataset trains, artifacts
 * download through the api byte for byte (a 192 MiB one with the api's peak RSS growing by less than
 * half of it), and no process wrote a file of its own. Then the store goes away: the api answers
 * 503 `unavailable` with Retry-After, and so it does for wrong keys.
 */
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { decodeTrainingState } from '@relu-lstm/lstm';
import {
  CANONICAL_TRAIN_EXAMPLE,
  CHECKPOINT_ARTIFACT,
  NO_PUBLISHED_SETS,
  PublishedSetSchema,
  openArtifactStore,
  TrainResultSchema,
  type JobEvent,
  type LogEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { RunnerClient } from '@relu-lstm/client';
import { http, startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness, type WorkerProcess } from '../apps/worker/test/harness';
import { S3Server } from '../libs/jobs/test/s3-server';

jest.setTimeout(120_000);

const BUCKET = 'relu-lstm-two-host';
const HOSTS = ['host-a', 'host-b'] as const;
/** A lapsed lock is noticed within seconds, as in worker-resume.test.ts. */
const FAST_STALL = { LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' };
const EPOCHS = 30;

const prefix = `run-${randomUUID()}`;
const root = mkdtempSync(join(tmpdir(), 'two-host-'));
/** Each process's working directory: nothing else is theirs on this machine. */
const cwds = Object.fromEntries(
  ['api', 'api-wrong-keys', ...HOSTS].map((name) => [name, mkdtempSync(join(root, `${name}-`))]),
);
let server: S3Server;
let s3: S3Client;
let env: Record<string, string>;
let api: ApiProcess;
let harness: Harness;
let client: RunnerClient;
const workers = new Map<string, WorkerProcess>();
let trainedId = '';
/** An infer job with inline outputs: it publishes no set, so its plain objects are its artifacts. */
let inferId = '';

beforeAll(async () => {
  server = await S3Server.start();
  await server.createBucket(BUCKET);
  s3 = server.client();
  env = {
    ...server.env(),
    ARTIFACT_DIR: `s3://${BUCKET}/${prefix}/artifacts`,
    DATASET_DIR: `s3://${BUCKET}/${prefix}/datasets`,
  };
  harness = new Harness(env);
  [api] = await Promise.all([
    startApi({ QUEUE_PREFIX: harness.prefix, ...env }, { cwd: cwds.api }),
    ...HOSTS.map(async (host) =>
      workers.set(host, await harness.startReadyWorker({ ...FAST_STALL, WORKER_ID: host }, { cwd: cwds[host] })),
    ),
  ]);
  client = new RunnerClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
  s3?.destroy();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function storedObject(key: string): Promise<Buffer> {
  const res = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: `${prefix}/${key}` }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** The object `name` of the job's published set, where the worker staged it (no copy at publish). */
async function publishedObject(id: string, name: string): Promise<Buffer> {
  const set = PublishedSetSchema.parse(JSON.parse((await harness.redis.get(harness.keys.published(id)))!));
  expect(set).toMatchObject({ layout: 'attempt' });
  expect(set.names).toContain(name);
  return storedObject(`artifacts/${id}/.stage-${set.stage}/${name}`);
}

const states = (events: JobEvent[]) => events.filter((e): e is StateEvent => e.type === 'state');

test('SIGKILL of the worker holding the train job: the other host resumes from the checkpoint in S3 and completes it', async () => {
  const { id } = await client.submitTrain({
    ...CANONICAL_TRAIN_EXAMPLE,
    training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: EPOCHS },
  });
  trainedId = id;
  const early = await harness.waitForEvent(
    id,
    (e) => e.type === 'log' && e.code === 'checkpoint' && Number(e.data?.epoch) >= 2,
    60_000,
  );
  const holder = states(early).find((e) => e.state === 'running')!.workerId!;
  expect(HOSTS).toContain(holder);
  const killed = workers.get(holder)!;
  killed.proc.kill('SIGKILL');
  expect(await killed.exited).toBe('SIGKILL');
  const checkpoint = decodeTrainingState(new Uint8Array(await storedObject(`artifacts/${id}/${CHECKPOINT_ARTIFACT}`)));
  const from = checkpoint.progress.epoch;
  expect(from).toBeGreaterThanOrEqual(2);
  expect(from).toBeLessThan(EPOCHS); // killed mid-run, not after

  const survivor = HOSTS.find((h) => h !== holder)!;
  const events = await harness.waitForEnd(id, 90_000, workers.get(survivor));
  const running = states(events).filter((e) => e.state === 'running');
  expect(running.map((e) => e.workerId)).toEqual([holder, survivor]);
  const resumed = events.find((e): e is LogEvent => e.type === 'log' && e.code === 'resumed');
  expect(resumed?.data).toMatchObject({ epoch: from, step: checkpoint.progress.globalStep });
  const end = states(events).at(-1)!;
  expect(end.state).toBe('completed');
  expect(TrainResultSchema.parse(end.result)).toMatchObject({ epochs: EPOCHS, resumedFromEpoch: from });
  // Published: the model is in the bucket, the checkpoint is gone.
  const names = (await client.listArtifacts(id)).items.map((a) => a.name);
  expect(names).toContain('model.safetensors');
  expect(names).not.toContain(CHECKPOINT_ARTIFACT);
  const downloaded = await client.downloadArtifact(id, 'model.safetensors');
  expect(Buffer.compare(Buffer.from(downloaded), await publishedObject(id, 'model.safetensors'))).toBe(0);
});

test('the model trained across hosts serves an inference', async () => {
  expect(trainedId).not.toBe('');
  const inputs = [[[0.1], [0.2], [0.3]]];
  const res = await client.submitInfer({ modelJobId: trainedId, inputs }, { wait: true });
  expect(res.error ?? null).toBeNull();
  inferId = res.id;
  const outputs = res.result?.outputs;
  expect(outputs?.length).toBe(1);
  expect(outputs![0].map((step) => step.length)).toEqual([1, 1, 1]);
  expect(outputs!.flat(2).every(Number.isFinite)).toBe(true);
});

test('a dataset uploaded through the api trains on a worker; its artifacts download equal to the stored objects', async () => {
  const x = Array.from({ length: 32 }, (_, i) => Array.from({ length: 8 }, (_, t) => [Math.sin((i + t) / 5)]));
  const y = x.map((seq) => seq.map(([v]) => [v / 2]));
  const dataset = await client.uploadDataset({ x, y });
  const { id } = await client.submitTrain({
    ...CANONICAL_TRAIN_EXAMPLE,
    data: { datasetId: dataset.id },
    training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 2 },
  });
  const events = await harness.waitForEnd(id, 60_000);
  expect(states(events).at(-1)?.state).toBe('completed');
  for (const { name } of (await client.listArtifacts(id)).items) {
    const downloaded = await client.downloadArtifact(id, name);
    expect(Buffer.compare(Buffer.from(downloaded), await publishedObject(id, name))).toBe(0);
  }
});

/** A `/proc/<pid>/status` field in MiB (`VmRSS`, `VmHWM`). */
function statusMiB(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) / 1024;
}

test('a 192 MiB artifact streams from S3 through the api: its peak RSS grows by less than half the object', async () => {
  const mib = 192;
  expect(inferId).not.toBe('');
  const data = Buffer.alloc(mib * 2 ** 20, 3);
  await openArtifactStore(env.ARTIFACT_DIR, { published: NO_PUBLISHED_SETS, env }).put(inferId, 'large.bin', data);
  const pid = api.child.pid!;
  const before = statusMiB(pid, 'VmRSS');
  writeFileSync(`/proc/${pid}/clear_refs`, '5'); // VmHWM from here on
  const res = await fetch(`${api.url}/v1/jobs/${inferId}/artifacts/large.bin`);
  expect(res.status).toBe(200);
  let bytes = 0;
  for await (const chunk of res.body!) bytes += (chunk as Uint8Array).length;
  expect(bytes).toBe(data.length);
  const growth = statusMiB(pid, 'VmHWM') - before;
  expect(growth).toBeLessThan(mib / 2);
  console.log(`api peak RSS growth while streaming ${mib} MiB from S3: ${growth.toFixed(1)} MiB`);
});

test('no process wrote a file of its own: every working directory is empty, the stores are s3:// URLs', () => {
  expect(env.ARTIFACT_DIR).toMatch(/^s3:\/\//);
  expect(env.DATASET_DIR).toMatch(/^s3:\/\//);
  for (const [name, cwd] of Object.entries(cwds)) {
    expect({ name, files: readdirSync(cwd) }).toEqual({ name, files: [] });
    expect(existsSync(join(cwd, 'data'))).toBe(false);
  }
  // Nor the temporary directories the harnesses would have used as stores.
  for (const dir of [harness.artifactDir, harness.datasetDir, api.artifactDir, api.datasetDir])
    expect(existsSync(dir)).toBe(false);
});

/** A 503 that names the store and says when to retry. */
function expectStoreUnavailable(res: { status: number; headers: Record<string, unknown>; json: any }) {
  expect(res.status).toBe(503);
  expect(res.json?.error?.code).toBe('unavailable');
  expect(res.json?.error?.message).toContain(`S3 bucket "${BUCKET}"`);
  expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
}

const storeRequests = (id: string) =>
  [
    ['GET', `/v1/jobs/${id}/artifacts`, {}],
    ['GET', `/v1/jobs/${id}/artifacts/model.safetensors`, {}],
    ['POST', '/v1/datasets', { body: { x: [[[1]]], y: [[[1]]] } }],
  ] as const;

test('wrong S3 keys: artifact list, download and dataset upload answer 503 naming the store', async () => {
  const wrong = await startApi(
    {
      QUEUE_PREFIX: harness.prefix,
      ...env,
      ...server.env({ AWS_ACCESS_KEY_ID: 'nobody', AWS_SECRET_ACCESS_KEY: 'wrong' }),
    },
    { cwd: cwds['api-wrong-keys'] },
  );
  try {
    for (const [method, path, opts] of storeRequests(trainedId))
      expectStoreUnavailable(await http(wrong.url, method, path, opts));
  } finally {
    await wrong.stop();
  }
});

test('the S3 server down: artifact list, download and dataset upload answer 503 naming the store', async () => {
  await server.kill();
  for (const [method, path, opts] of storeRequests(trainedId))
    expectStoreUnavailable(await http(api.url, method, path, { ...opts, timeoutMs: 30_000 }));
});
