/**
 * End to end across real processes: the compiled api and a compiled worker against the real Redis
 * (a unique queue prefix), driven through the typed RunnerClient over HTTP and through QueueClient
 * straight onto the queues. The canonical example of the README trains; its SSE events, artifacts and
 * final state are checked against the library's own forward pass; inference runs from the model.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { ReluLstm, SequenceModel, safetensorsToStateDict } from '@relu-lstm/lstm';
import {
  CANONICAL_TRAIN_EXAMPLE,
  DEFAULT_LIMITS,
  StateArtifactSchema,
  makeContract,
  type JobEvent,
  type MetricEvent,
  type StateEvent,
  type TrainResult,
} from '@relu-lstm/jobs';
import { QueueClient, RunnerClient } from '@relu-lstm/client';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness } from '../apps/worker/test/harness';

jest.setTimeout(180_000);

let api: ApiProcess;
let harness: Harness;
let client: RunnerClient;

beforeAll(async () => {
  await tf.setBackend('cpu');
  harness = new Harness();
  // The api shares the worker harness's prefix and directories: one system. It allows more layers
  // than the default limits (the documented way to raise a limit); the worker has no LIMIT_* of its own.
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
    LIMIT_MAX_LAYERS: '32',
  });
  await harness.startReadyWorker(); // stopped by harness.close()
  client = new RunnerClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.stop();
  await harness?.close(); // stops the workers, deletes the prefix's keys, quits Redis, removes the directories
});

async function collect(id: string): Promise<JobEvent[]> {
  const events: JobEvent[] = [];
  for await (const stored of client.events(id)) events.push(stored.event);
  return events;
}

describe('the canonical example through RunnerClient (HTTP, SSE, artifacts)', () => {
  let trainId: string;

  it('trains: SSE replays every metric in order, the loss falls, the job completes', async () => {
    const submitted = await client.submitTrain(CANONICAL_TRAIN_EXAMPLE);
    expect(submitted.state).toBe('queued');
    trainId = submitted.id;
    expect(trainId).toMatch(/^[0-9a-f-]{36}$/);
    const events = await collect(trainId);
    const states = events.filter((e): e is StateEvent => e.type === 'state').map((e) => e.state);
    expect(states[0]).toBe('queued');
    expect(states).toContain('running');
    expect(states[states.length - 1]).toBe('completed');
    const metrics = events.filter((e): e is MetricEvent => e.type === 'metric');
    const steps = metrics.map((m) => m.step);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    const epochEnds = metrics.filter((m) => m.epochEnd);
    expect(epochEnds.map((m) => m.epoch)).toEqual([0, 1, 2]); // 3 epochs
    expect(epochEnds[2].loss).toBeLessThan(epochEnds[0].loss);
    const view = await client.get(trainId);
    expect(view).toMatchObject({ id: trainId, type: 'train', state: 'completed' });
  });

  it('serves model.safetensors and state.json; h_n, c_n equal the library on the final weights', async () => {
    const names = (await client.listArtifacts(trainId)).items.map((a) => a.name).sort();
    expect(names).toEqual(['config.json', 'metrics.csv', 'model.safetensors', 'state.json']);
    const { stateDict } = safetensorsToStateDict(await client.downloadArtifact(trainId, 'model.safetensors'));
    const state = StateArtifactSchema.parse(
      JSON.parse(Buffer.from(await client.downloadArtifact(trainId, 'state.json')).toString('utf8')),
    );
    const { ['head.weight']: hw, ['head.bias']: hb, ...lstmDict } = stateDict;
    expect(hw.shape).toEqual([1, 16]);
    expect(hb.shape).toEqual([1]);
    const lstm = new ReluLstm({ inputSize: 1, hiddenSize: 16, batchFirst: true });
    try {
      lstm.loadStateDict(lstmDict);
      const inputs = state.input.inputs!;
      const [hN, cN] = tf.tidy(() => {
        const r = lstm.forward(tf.tensor3d(inputs));
        return [r.hN.arraySync(), r.cN.arraySync()];
      });
      expect(state.shapes.h_n).toEqual([1, inputs.length, 16]);
      expect(maxAbsDiff(state.h_n, hN)).toBeLessThan(1e-5);
      expect(maxAbsDiff(state.c_n, cN)).toBeLessThan(1e-5);
    } finally {
      lstm.dispose();
      tf.dispose(Object.values(stateDict));
    }
  });

  it('infers synchronously from the trained model; outputs, hN and cN match the library', async () => {
    const inputs = [[[0.1], [0.2], [0.3]]];
    const res = await client.submitInfer({ modelJobId: trainId, inputs }, { wait: true });
    expect(res.state).toBe('completed');
    const result = (res as { result: { outputs: number[][][]; hN: number[][][]; cN: number[][][] } }).result;
    const { stateDict } = safetensorsToStateDict(await client.downloadArtifact(trainId, 'model.safetensors'));
    const model = new SequenceModel({ lstm: { inputSize: 1, hiddenSize: 16, batchFirst: true }, outputSize: 1 });
    try {
      model.loadStateDict(stateDict);
      const [y, hN, cN] = tf.tidy(() => {
        const r = model.predict(tf.tensor3d(inputs));
        return [r.y.arraySync(), r.hN.arraySync(), r.cN.arraySync()];
      });
      expect(maxAbsDiff(result.outputs!, y)).toBeLessThan(1e-5);
      expect(maxAbsDiff(result.hN, hN)).toBeLessThan(1e-5);
      expect(maxAbsDiff(result.cN, cN)).toBeLessThan(1e-5);
    } finally {
      model.dispose();
      tf.dispose(Object.values(stateDict));
    }
  });

  it('refuses a bad payload with 400 naming the field, and nothing is queued', async () => {
    const before = (await client.list({ limit: 100 })).items.length;
    const bad = { ...CANONICAL_TRAIN_EXAMPLE, model: { ...CANONICAL_TRAIN_EXAMPLE.model, hiddenSize: -3 } };
    // Skip the client's own validation to see the server's answer.
    const res = await fetch(new URL('/v1/jobs/train', api.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(bad),
    });
    expect(res.status).toBe(400);
    expect(JSON.stringify(await res.json())).toContain('model.hiddenSize');
    // The client validates with the same schema before sending: a typed error naming the field.
    await expect(client.submitTrain(bad)).rejects.toThrow(/model\.hiddenSize/);
    expect((await client.list({ limit: 100 })).items.length).toBe(before);
  });
});

describe('QueueClient: straight onto the queue, served by the same worker', () => {
  it('trains and then infers from the queued model', async () => {
    const queue = new QueueClient({
      connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      prefix: harness.prefix,
      tenant: 'default',
    });
    try {
      const job = await queue.submitTrain({
        ...CANONICAL_TRAIN_EXAMPLE,
        training: { ...CANONICAL_TRAIN_EXAMPLE.training, epochs: 1 },
      });
      const result = await client.waitForResult(job.id, { timeoutMs: 120_000 });
      expect(result).toMatchObject({ epochs: 1 });
      const infer = await queue.submitInfer({ modelJobId: job.id, inputs: [[[0.5], [0.4]]] });
      const out = (await client.waitForResult(infer.id, { timeoutMs: 60_000 })) as unknown as {
        outputs: number[][][];
        hN: number[][][];
      };
      expect(out.outputs.length).toBe(1);
      expect(out.outputs[0].length).toBe(2);
      expect(out.hN.length).toBe(1);
    } finally {
      await queue.close();
    }
  });
});

describe('the api and the worker agree on what a job may be', () => {
  it('a job accepted under LIMIT_MAX_LAYERS=32 with 20 layers completes (the worker uses the limits it carries)', async () => {
    expect(DEFAULT_LIMITS.maxLayers).toBeLessThan(20); // else this would not test anything
    const raised = new RunnerClient({ baseUrl: api.url, contract: makeContract({ ...DEFAULT_LIMITS, maxLayers: 32 }) });
    const job = await raised.submitTrain({
      model: { inputSize: 1, hiddenSize: 2, numLayers: 20, outputSize: 1 },
      data: { synthetic: { kind: 'sine', samples: 4, seqLen: 3 } },
      training: { epochs: 1, batchSize: 4 },
    });
    expect(job.state).toBe('queued');
    const result = await raised.waitForResult<TrainResult>(job.id, { timeoutMs: 120_000 });
    expect(result).toMatchObject({ epochs: 1, steps: 1 });
  });

  it('4 samples with validationSplit 0.2: the api accepts and the library trains 3, validating on 1', async () => {
    const x = [[[0.1]], [[0.2]], [[0.3]], [[0.4]]];
    const job = await client.submitTrain({
      model: { inputSize: 1, hiddenSize: 2, outputSize: 1 },
      data: { inline: { x, y: x } },
      training: { epochs: 1, batchSize: 4, validationSplit: 0.2 },
    });
    const result = await client.waitForResult<TrainResult>(job.id, { timeoutMs: 120_000 });
    expect(result).toMatchObject({ epochs: 1, steps: 1 });
    expect(result.finalValLoss).toEqual(expect.any(Number));
  });

  it('1 sample with validationSplit 0.5 leaves none to train: the api refuses it with 400 naming the field', async () => {
    const body = {
      model: { inputSize: 1, hiddenSize: 2, outputSize: 1 },
      data: { inline: { x: [[[0.1]]], y: [[[0.1]]] } },
      training: { epochs: 1, batchSize: 1, validationSplit: 0.5 },
    };
    const res = await fetch(new URL('/v1/jobs/train', api.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(400);
    const { error } = (await res.json()) as { error: { issues: Array<{ path: string; expected?: string }> } };
    expect(error.issues).toContainEqual(
      expect.objectContaining({
        path: 'training.validationSplit',
        expected: 'a split leaving at least one of the 1 samples for training',
      }),
    );
  });
});

function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(3) as number[];
  const fb = (b as number[]).flat(3) as number[];
  expect(fa.length).toBe(fb.length);
  return fa.reduce((m, v, i) => Math.max(m, Math.abs(v - fb[i])), 0);
}
