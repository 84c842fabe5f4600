/**
 * The runner on webgpu: the compiled api and a compiled worker with RELU_LSTM_BACKEND=webgpu (Dawn;
 * lavapipe in CI) against the real Redis. The README's canonical example trains there; its final state
 * and an inference from the trained model match the library's own forward pass on the cpu backend.
 * Without a Vulkan device Dawn accepts, outside CI, the file prints one SKIPPED line.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { SequenceModel, safetensorsToStateDict } from '@relu-lstm/lstm';
import { CANONICAL_TRAIN_EXAMPLE, StateArtifactSchema, type MetricEvent, type TrainResult } from '@relu-lstm/jobs';
import { RunnerClient } from '@relu-lstm/client';
import { startApi, type ApiProcess } from '../apps/api/test/harness';
import { Harness, type WorkerProcess } from '../apps/worker/test/harness';
import { webgpuMissing } from '../libs/lstm/test/helpers/webgpu';

jest.setTimeout(240_000);

let missing: string | null = null;
let api: ApiProcess | undefined;
let harness: Harness | undefined;
let worker: WorkerProcess;
let client: RunnerClient;

beforeAll(async () => {
  missing = await webgpuMissing();
  if (missing !== null) {
    if (process.env.CI === 'true') throw new Error(`webgpu is required under CI=true: ${missing}`);
    process.stdout.write(`SKIPPED: the runner on webgpu (test/e2e-webgpu.test.ts): no webgpu adapter: ${missing}\n`);
    return;
  }
  await tf.setBackend('cpu');
  harness = new Harness();
  api = await startApi({
    QUEUE_PREFIX: harness.prefix,
    ARTIFACT_DIR: harness.artifactDir,
    DATASET_DIR: harness.datasetDir,
  });
  worker = await harness.startReadyWorker({ RELU_LSTM_BACKEND: 'webgpu' }, { timeoutMs: 120_000 });
  client = new RunnerClient({ baseUrl: api.url });
});

afterAll(async () => {
  await api?.stop();
  await harness?.close();
});

function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(3) as number[];
  const fb = (b as number[]).flat(3) as number[];
  expect(fa.length).toBe(fb.length);
  return fa.reduce((m, v, i) => Math.max(m, Math.abs(v - fb[i])), 0);
}

/** The trained model from its model.safetensors, on the cpu backend (the independent side). */
async function trainedModel(id: string): Promise<SequenceModel> {
  const { stateDict } = safetensorsToStateDict(await client.downloadArtifact(id, 'model.safetensors'));
  const { model } = CANONICAL_TRAIN_EXAMPLE;
  const m = new SequenceModel({
    lstm: { inputSize: model.inputSize, hiddenSize: model.hiddenSize, batchFirst: true },
    outputSize: model.outputSize,
  });
  try {
    m.loadStateDict(stateDict);
  } finally {
    tf.dispose(Object.values(stateDict));
  }
  return m;
}

describe('a worker with RELU_LSTM_BACKEND=webgpu', () => {
  let trainId: string;

  it('reports webgpu and its adapter in /v1/workers', async () => {
    if (missing !== null) return;
    const workers = await client.workers();
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({ backend: 'webgpu', pid: worker.proc.pid });
    expect(workers[0].device).toMatch(/^(Vulkan|Metal|D3D12): .+ adapter$/);
    expect(workers[0].gpu).toBe(/, hardware adapter$/.test(workers[0].device));
  });

  it('trains the canonical example: the loss falls and the job completes', async () => {
    if (missing !== null) return;
    trainId = (await client.submitTrain(CANONICAL_TRAIN_EXAMPLE)).id;
    const result = await client.waitForResult<TrainResult>(trainId, { timeoutMs: 200_000 });
    expect(result.epochs).toBe(CANONICAL_TRAIN_EXAMPLE.training.epochs);
    const metrics: MetricEvent[] = [];
    for await (const stored of client.events(trainId)) if (stored.event.type === 'metric') metrics.push(stored.event);
    const epochEnds = metrics.filter((m) => m.epochEnd);
    expect(epochEnds).toHaveLength(CANONICAL_TRAIN_EXAMPLE.training.epochs!);
    expect(epochEnds.every((m) => Number.isFinite(m.loss) && m.loss > 0)).toBe(true);
    expect(epochEnds[epochEnds.length - 1].loss).toBeLessThan(epochEnds[0].loss);
  });

  it("its state.json and an inference from the model match the library's forward pass on cpu", async () => {
    if (missing !== null) return;
    const model = await trainedModel(trainId);
    try {
      const state = StateArtifactSchema.parse(
        JSON.parse(Buffer.from(await client.downloadArtifact(trainId, 'state.json')).toString('utf8')),
      );
      const ref = model.predict(tf.tensor3d(state.input.inputs!));
      expect(maxAbsDiff(state.h_n, await ref.hN.array())).toBeLessThan(1e-5);
      expect(maxAbsDiff(state.c_n, await ref.cN.array())).toBeLessThan(1e-5);

      const inputs = [[[0.1], [0.2], [0.3]]];
      const res = await client.submitInfer({ modelJobId: trainId, inputs }, { wait: true });
      expect(res.state).toBe('completed');
      const got = (res as { result: { outputs: number[][][]; hN: number[][][]; cN: number[][][] } }).result;
      const want = model.predict(tf.tensor3d(inputs));
      expect(maxAbsDiff(got.outputs, await want.y.array())).toBeLessThan(1e-5);
      expect(maxAbsDiff(got.hN, await want.hN.array())).toBeLessThan(1e-5);
      expect(maxAbsDiff(got.cN, await want.cN.array())).toBeLessThan(1e-5);
      tf.dispose([ref.y, ref.hN, ref.cN, want.y, want.hN, want.cN]);
    } finally {
      model.dispose();
    }
    expect(worker.output()).not.toMatch(/webgpu: device error/);
  });
});
