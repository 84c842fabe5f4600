/**
 * The compiled worker as a real process against a real Redis: a train job put on the queue runs to
 * completion with ordered metrics and a falling loss; its artifacts decode to the right names and
 * shapes; `state.json` and an infer job agree with the library's own forward pass on the saved
 * weights; bad job data fails with `invalid_payload` without stopping the worker; heartbeats; and a
 * clean SIGTERM exit.
 */
import { Job } from 'bullmq';
import * as tf from '@tensorflow/tfjs-core';
import { ReluLstm, SequenceModel, safetensorsToStateDict } from '@relu-lstm/lstm';
import {
  ARTIFACTS,
  InferResultSchema,
  MODEL_METADATA_KEY,
  ModelArtifactConfigSchema,
  StateArtifactSchema,
  TrainResultSchema,
  WorkerHeartbeatSchema,
  contract,
  copyModelFiles,
  decodeJobError,
  newModelStorageId,
  openDatasetStore,
  type InferResult,
  type JobEvent,
  type MetricEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { Harness, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(120_000);

let h: Harness;
let worker: WorkerProcess;

beforeAll(async () => {
  h = new Harness();
  worker = await h.startReadyWorker();
});

afterAll(async () => {
  await h?.close();
});

const H = 8;
const trainPayload = contract.TrainPayload.parse({
  model: { inputSize: 1, hiddenSize: H, numLayers: 1, activation: 'relu', outputSize: 1 },
  data: { synthetic: { kind: 'sine', samples: 64, seqLen: 12 } },
  training: {
    epochs: 4,
    batchSize: 16,
    optimizer: 'adam',
    learningRate: 0.02,
    seed: 3,
    clipNorm: 1,
    checkpointEvery: 1,
    progressEvery: 2,
  },
  device: 'any',
});

function maxAbsDiff(a: unknown, b: unknown): number {
  const fa = (a as number[]).flat(3) as number[];
  const fb = (b as number[]).flat(3) as number[];
  expect(fa.length).toBe(fb.length);
  return fa.reduce((m, v, i) => Math.max(m, Math.abs(v - fb[i])), 0);
}

/** The LSTM part of a decoded model.safetensors, loaded into a fresh ReluLstm. */
function lstmFrom(dict: Record<string, tf.Tensor>, inputSize: number): ReluLstm {
  const lstm = new ReluLstm({ inputSize, hiddenSize: H, batchFirst: true, activation: 'relu' });
  const { ['head.weight']: _w, ['head.bias']: _b, ...rest } = dict;
  lstm.loadStateDict(rest);
  return lstm;
}

describe('worker', () => {
  let trainId: string;
  let events: JobEvent[];

  it('publishes a heartbeat with its backend, queues and pid', async () => {
    // The first heartbeat may land just after the worker says it is consuming (a busy machine).
    await waitFor(
      async () => (await h.redis.zcard(h.keys.workers())) > 0,
      10_000,
      () => `no heartbeat:\n${worker.output()}`,
      worker,
    );
    const ids = await h.redis.zrange(h.keys.workers(), 0, '-1');
    expect(ids).toHaveLength(1);
    const hb = WorkerHeartbeatSchema.parse(JSON.parse((await h.redis.get(h.keys.worker(ids[0])))!));
    expect(hb.pid).toBe(worker.proc.pid);
    expect(hb.queues).toEqual(['cpu', 'any']);
    expect(['wasm', 'cpu', 'tensorflow']).toContain(hb.backend);
    expect(hb.currentJobId).toBeNull();
    expect(await h.redis.pttl(h.keys.worker(ids[0]))).toBeGreaterThan(0);
  });

  it('runs a train job to completion with ordered metrics and a falling loss', async () => {
    const t0 = Date.now();
    trainId = await h.submit('train', trainPayload, { job: { name: 'wti, run 1', tags: { k: 'v' }, priority: 5 } });
    events = await h.waitForEnd(trainId, 60_000, worker);
    const states = events.filter((e): e is StateEvent => e.type === 'state');
    expect(states.map((s) => s.state)).toEqual(['queued', 'running', 'completed']);
    expect(states[1].attempt).toBe(1);

    const metrics = events.filter((e): e is MetricEvent => e.type === 'metric');
    const steps = metrics.map((m) => m.step);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(new Set(steps).size).toBe(steps.length);
    // 64 samples / 16 = 4 steps per epoch: a point at step 2 and at each epoch end.
    expect(metrics.filter((m) => m.epochEnd).map((m) => [m.epoch, m.step])).toEqual([
      [0, 4],
      [1, 8],
      [2, 12],
      [3, 16],
    ]);
    const epochLoss = metrics.filter((m) => m.epochEnd).map((m) => m.loss);
    expect(epochLoss[3]).toBeLessThan(epochLoss[0]);
    expect(events.filter((e) => e.type === 'log' && e.code === 'checkpoint')).toHaveLength(4);
    // No warnings: in particular the engine left no tensor behind (it reports leaks as `tensor_leak`).
    expect(events.filter((e) => e.type === 'log' && e.level !== 'info')).toEqual([]);

    const result = TrainResultSchema.parse(states[2].result);
    expect(result).toMatchObject({ epochs: 4, steps: 16, resumedFromEpoch: null, gpu: false });
    expect(result.finalLoss).toBeCloseTo(epochLoss[3], 6);
    expect([...result.artifacts].sort()).toEqual(Object.values(ARTIFACTS).sort());

    // BullMQ agrees: completed, the same summary, progress = the last point.
    const job = await Job.fromId(h.queue('any'), trainId);
    expect(await job!.getState()).toBe('completed');
    expect(job!.returnvalue).toEqual(result);
    expect(job!.progress).toMatchObject({ epoch: 3, step: 16 });
    // The checkpoint is gone once the final artifacts exist.
    expect((await h.artifacts.list(trainId)).map((a) => a.name).sort()).toEqual(Object.values(ARTIFACTS).sort());
    expect(await h.redis.exists(h.keys.checkpoint(trainId))).toBe(0);
    console.log(
      `train job: ${Date.now() - t0} ms end to end, ${result.elapsedMs} ms in the engine, backend ${result.backend}`,
    );
  });

  it('writes model.safetensors with PyTorch names and shapes, metrics.csv and config.json', async () => {
    const { stateDict, metadata } = safetensorsToStateDict(
      new Uint8Array(await h.artifacts.get(trainId, ARTIFACTS.model)),
    );
    try {
      const shapes = Object.fromEntries(Object.entries(stateDict).map(([k, v]) => [k, v.shape]));
      expect(shapes).toEqual({
        weight_ih_l0: [4 * H, 1],
        weight_hh_l0: [4 * H, H],
        bias_ih_l0: [4 * H],
        bias_hh_l0: [4 * H],
        'head.weight': [1, H],
        'head.bias': [1],
      });
      const cfg = ModelArtifactConfigSchema.parse(JSON.parse(metadata[MODEL_METADATA_KEY]));
      expect(cfg.jobId).toBe(trainId);
      expect(cfg.model).toMatchObject({
        inputSize: 1,
        hiddenSize: H,
        numLayers: 1,
        activation: 'relu',
        outputSize: 1,
        head: 'manyToMany',
      });
    } finally {
      tf.dispose(Object.values(stateDict));
    }

    const csv = (await h.artifacts.get(trainId, ARTIFACTS.metrics)).toString().trim().split('\n');
    expect(csv[0]).toBe('epoch,step,loss,valLoss,gradNorm,samplesPerSec,elapsedMs,epochEnd,learningRate,name,tags');
    const metricEvents = events.filter((e): e is MetricEvent => e.type === 'metric');
    expect(csv.slice(1).map((l) => Number(l.split(',')[1]))).toEqual(metricEvents.map((m) => m.step));
    for (const row of csv.slice(1)) expect(row.endsWith(',"wti, run 1","{""k"":""v""}"')).toBe(true);

    const config = JSON.parse((await h.artifacts.get(trainId, ARTIFACTS.config)).toString());
    expect(config).toMatchObject({ jobId: trainId, model: { hiddenSize: H }, payload: { training: { epochs: 4 } } });
    expect([config.name, config.tags]).toEqual(['wti, run 1', { k: 'v' }]);
    expect(config.backend.backend).toBeDefined();
  });

  it("state.json holds the h_n, c_n of the library's own forward pass on the saved weights", async () => {
    const state = StateArtifactSchema.parse(JSON.parse((await h.artifacts.get(trainId, ARTIFACTS.state)).toString()));
    expect(state.input.source).toBe('firstBatch');
    expect(state.input.shape).toEqual([16, 12, 1]);
    expect(state.shapes).toEqual({ h_n: [1, 16, H], c_n: [1, 16, H] });
    const { stateDict } = safetensorsToStateDict(new Uint8Array(await h.artifacts.get(trainId, ARTIFACTS.model)));
    const lstm = lstmFrom(stateDict, 1);
    const x = tf.tensor3d(state.input.inputs!);
    const { output, hN, cN } = lstm.forward(x);
    try {
      expect(maxAbsDiff(await hN.array(), state.h_n)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await cN.array(), state.c_n)).toBeLessThan(1e-4);
      expect(Math.max(...(state.h_n.flat(2) as number[]))).toBeGreaterThan(0); // not a trivial all-zero state
    } finally {
      tf.dispose([x, output, hN, cN, ...Object.values(stateDict)]);
      lstm.dispose();
    }
  });

  it('runs an infer job on the trained model; outputs, hN and cN match the library', async () => {
    const inputs = [
      [[0.1], [0.2], [0.3]],
      [[-0.5], [0.0], [0.5]],
    ];
    const inferId = await h.submit('infer', contract.InferPayload.parse({ modelJobId: trainId, inputs }));
    const ev = await h.waitForEnd(inferId, 30_000, worker);
    const done = ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed');
    expect(done).toBeDefined();
    const result = InferResultSchema.parse(done!.result);

    const { stateDict, metadata } = safetensorsToStateDict(
      new Uint8Array(await h.artifacts.get(trainId, ARTIFACTS.model)),
    );
    const cfg = ModelArtifactConfigSchema.parse(JSON.parse(metadata[MODEL_METADATA_KEY]));
    const model = new SequenceModel(cfg.sequenceModel as never);
    model.loadStateDict(stateDict);
    const x = tf.tensor3d(inputs);
    const { y, hN, cN } = model.predict(x);
    try {
      expect(result.outputs!.length).toBe(2);
      expect(result.outputs![0].length).toBe(3);
      expect(maxAbsDiff(await y.array(), result.outputs!)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await hN.array(), result.hN)).toBeLessThan(1e-4);
      expect(maxAbsDiff(await cN.array(), result.cN)).toBeLessThan(1e-4);
    } finally {
      tf.dispose([x, y, hN, cN, ...Object.values(stateDict)]);
      model.dispose();
    }
  });

  it('infers from a batch-1 initialState, which is broadcast over the inputs', async () => {
    const inputs = [
      [[0.1], [0.2]],
      [[-0.5], [0.5]],
    ];
    const h0 = [[Array.from({ length: H }, (_, j) => 0.2 * (j % 3))]];
    const c0 = [[Array.from({ length: H }, (_, j) => 0.5 - 0.1 * j)]];
    const inferId = await h.submit(
      'infer',
      contract.InferPayload.parse({ modelJobId: trainId, inputs, initialState: { h0, c0 } }),
    );
    const ev = await h.waitForEnd(inferId, 30_000, worker);
    const done = ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed');
    const result = InferResultSchema.parse(done!.result);
    const { stateDict } = safetensorsToStateDict(new Uint8Array(await h.artifacts.get(trainId, ARTIFACTS.model)));
    const lstm = lstmFrom(stateDict, 1);
    try {
      // The reference tiles the state explicitly: one copy per sequence.
      const hN = tf.tidy(() =>
        lstm
          .forward(tf.tensor3d(inputs), {
            h0: tf.tensor3d([[h0[0][0], h0[0][0]]]),
            c0: tf.tensor3d([[c0[0][0], c0[0][0]]]),
          })
          .hN.arraySync(),
      );
      expect(maxAbsDiff(result.hN, hN)).toBeLessThan(1e-4);
    } finally {
      lstm.dispose();
      tf.dispose(Object.values(stateDict));
    }
  });

  it('fails invalid job data at once with invalid_payload and keeps working', async () => {
    const limits = contract.limits;
    const bad = await h.addRaw('any', 'train', {
      type: 'train',
      tenant: 'default',
      limits,
      payload: { model: { inputSize: 0 } },
    });
    const mislabelled = await h.addRaw('cpu', 'infer', {
      type: 'train',
      tenant: 'default',
      limits,
      payload: trainPayload,
    });
    // Without the limits it was accepted under, a payload is not validated against anything else.
    const noLimits = await h.addRaw('any', 'train', { type: 'train', tenant: 'default', payload: trainPayload });
    for (const id of [bad, mislabelled, noLimits]) {
      const ev = await h.waitForEnd(id, 20_000, worker);
      const end = ev.find((e): e is StateEvent => e.type === 'state')!;
      expect(end.state).toBe('failed');
      expect(end.error?.code).toBe('invalid_payload');
      const job = await Job.fromId(h.queue(id === mislabelled ? 'cpu' : 'any'), id);
      expect(await job!.getState()).toBe('failed');
      expect(decodeJobError(job!.failedReason).code).toBe('invalid_payload');
      expect(job!.attemptsMade).toBe(1);
    }
    const bad1 = await Job.fromId(h.queue('any'), bad);
    expect(decodeJobError(bad1!.failedReason).details?.issues).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: 'payload.model.inputSize' })]),
    );
    const noLimits1 = await Job.fromId(h.queue('any'), noLimits);
    expect(decodeJobError(noLimits1!.failedReason).details?.issues).toEqual([
      expect.objectContaining({ path: 'limits', expected: 'object', received: 'undefined (missing)' }),
    ]);

    // Still alive and serving: an inline-model infer job on the cpu queue.
    const inferId = await h.submit(
      'infer',
      contract.InferPayload.parse({
        model: {
          config: { inputSize: 1, hiddenSize: 1, outputSize: 1 },
          stateDict: {
            weight_ih_l0: [[1], [1], [1], [1]],
            weight_hh_l0: [[0], [0], [0], [0]],
            bias_ih_l0: [0, 0, 0, 0],
            bias_hh_l0: [0, 0, 0, 0],
            'head.weight': [[2]],
            'head.bias': [1],
          },
        },
        inputs: [[[1]]],
        device: 'cpu',
      }),
    );
    const ev = await h.waitForEnd(inferId, 20_000, worker);
    const done = ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed');
    const r = InferResultSchema.parse(done!.result);
    // g = relu(1) = 1, i = f = o = sigmoid(1); c = i * g; h = o * relu(c); y = 2h + 1.
    const s = 1 / (1 + Math.exp(-1));
    expect(r.cN[0][0][0]).toBeCloseTo(s, 5);
    expect(r.hN[0][0][0]).toBeCloseTo(s * s, 5);
    expect(r.outputs![0][0][0]).toBeCloseTo(2 * s * s + 1, 5);
    expect(worker.proc.exitCode).toBeNull();
  });

  it('fails an infer job whose model does not exist with not_found, and one with a wrong input size with invalid_payload', async () => {
    const missing = await h.submit(
      'infer',
      contract.InferPayload.parse({ modelJobId: '00000000-0000-4000-8000-000000000000', inputs: [[[1]]] }),
    );
    const wrongSize = await h.submit('infer', contract.InferPayload.parse({ modelJobId: trainId, inputs: [[[1, 2]]] }));
    const codes: string[] = [];
    for (const id of [missing, wrongSize]) {
      const ev = await h.waitForEnd(id, 20_000, worker);
      codes.push(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'failed')?.error?.code ?? 'none');
    }
    expect(codes).toEqual(['not_found', 'invalid_payload']);
  });

  it('a registered model: loaded from the recorded version; gone files are not_found naming it; no version is invalid_payload', async () => {
    const storageId = newModelStorageId();
    expect(await copyModelFiles(h.artifacts, trainId, storageId)).toHaveLength(4);
    const version = { name: 'm', version: 2, storageId, jobId: trainId };
    const payload = contract.InferPayload.parse({ model: 'm@production', inputs: [[[0.5], [0.25]]] });
    const viaName = await h.submit('infer', payload, { modelVersion: version });
    const viaJob = await h.submit(
      'infer',
      contract.InferPayload.parse({ modelJobId: trainId, inputs: [[[0.5], [0.25]]] }),
    );
    const results = [];
    for (const id of [viaName, viaJob]) {
      const ev = await h.waitForEnd(id, 20_000, worker);
      results.push(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed')?.result);
    }
    expect(results[0]).toBeDefined();
    expect((results[0] as InferResult).outputs).toEqual((results[1] as InferResult).outputs);

    await h.artifacts.remove(storageId);
    const gone = await h.submit('infer', payload, { modelVersion: version });
    const unresolved = await h.submit('infer', payload);
    const errors = [];
    for (const id of [gone, unresolved]) {
      const ev = await h.waitForEnd(id, 20_000, worker);
      errors.push(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'failed')?.error);
    }
    expect(errors[0]).toMatchObject({
      code: 'not_found',
      message: expect.stringMatching(/^model: model m@2 has no model.safetensors/),
    });
    expect(errors[1]).toMatchObject({ code: 'invalid_payload', message: expect.stringContaining('modelVersion') });
  });

  it('starts a train job from the weights of an earlier one (fromJob), and refuses one of another shape', async () => {
    // sgd with a negligible learning rate: the new model's weights are the old ones.
    const next = await h.submit(
      'train',
      contract.TrainPayload.parse({
        ...trainPayload,
        fromJob: trainId,
        training: { epochs: 1, batchSize: 16, optimizer: 'sgd', learningRate: 1e-9, seed: 99 },
      }),
    );
    const ev = await h.waitForEnd(next, 30_000, worker);
    expect(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed')).toBeDefined();
    const [a, b] = await Promise.all(
      [trainId, next].map(
        async (id) => safetensorsToStateDict(new Uint8Array(await h.artifacts.get(id, ARTIFACTS.model))).stateDict,
      ),
    );
    try {
      for (const name of Object.keys(a))
        expect(maxAbsDiff(await a[name].array(), await b[name].array())).toBeLessThan(1e-6);
    } finally {
      tf.dispose([...Object.values(a), ...Object.values(b)]);
    }
    expect(JSON.parse((await h.artifacts.get(next, ARTIFACTS.config)).toString()).resolved.init).toBe('fromJob');
    // The earlier job's final state (row 0 of its state.json) is the new run's start state.
    expect(
      StateArtifactSchema.parse(JSON.parse((await h.artifacts.get(next, ARTIFACTS.state)).toString())).initialState,
    ).toBe('fromJob');

    const wrong = await h.submit(
      'train',
      contract.TrainPayload.parse({
        ...trainPayload,
        model: { ...trainPayload.model, hiddenSize: H + 1 },
        fromJob: trainId,
      }),
    );
    const ev2 = await h.waitForEnd(wrong, 30_000, worker);
    const failed = ev2.find((e): e is StateEvent => e.type === 'state' && e.state === 'failed');
    expect(failed?.error).toMatchObject({ code: 'invalid_payload', details: { field: 'model.hiddenSize' } });
  });

  it('trains on an uploaded dataset with a validation split and records state.json for the given stateInput', async () => {
    const datasetId = '11111111-2222-4333-8444-555555555555';
    const x = Array.from({ length: 8 }, (_, n) => Array.from({ length: 5 }, (_, t) => [Math.sin(n + t)]));
    const y = x.map((seq) => [seq.reduce((acc, [v]) => acc + v, 0)]);
    await openDatasetStore(h.datasetDir).put(datasetId, { x, y });
    const stateInput = { inputs: [[[0.5], [0.25]]], description: 'two steps of a probe' };
    const id = await h.submit(
      'train',
      contract.TrainPayload.parse({
        model: { inputSize: 1, hiddenSize: H, outputSize: 1, head: 'lastStep' },
        data: { datasetId },
        training: { epochs: 2, batchSize: 3, validationSplit: 0.25, seed: 5 },
        stateInput,
        device: 'cpu',
      }),
    );
    const ev = await h.waitForEnd(id, 30_000, worker);
    expect(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed')).toBeDefined();
    const ends = ev.filter((e): e is MetricEvent => e.type === 'metric' && e.epochEnd === true);
    expect(ends.map((m) => m.step)).toEqual([2, 4]); // 6 training samples, batches of 3
    for (const m of ends) expect(m.valLoss).toEqual(expect.any(Number));
    const state = StateArtifactSchema.parse(JSON.parse((await h.artifacts.get(id, ARTIFACTS.state)).toString()));
    expect(state.input).toMatchObject({
      source: 'stateInput',
      description: 'two steps of a probe',
      shape: [1, 2, 1],
      inputs: stateInput.inputs,
    });
    expect(state.shapes.h_n).toEqual([1, 1, H]);
  });

  it('trains from a given initialState, and state.json starts from it too', async () => {
    const h0 = [Array.from({ length: H }, (_, j) => 0.1 * (j + 1))];
    const c0 = [Array.from({ length: H }, (_, j) => 0.3 - 0.05 * j)];
    const stateInput = { inputs: [[[0.5], [0.25], [-0.1]]] };
    const id = await h.submit(
      'train',
      contract.TrainPayload.parse({
        ...trainPayload,
        training: { ...trainPayload.training, epochs: 1 },
        initialState: { h0: [h0], c0: [c0] },
        stateInput,
      }),
    );
    const ev = await h.waitForEnd(id, 30_000, worker);
    expect(ev.find((e): e is StateEvent => e.type === 'state' && e.state === 'completed')).toBeDefined();
    const state = StateArtifactSchema.parse(JSON.parse((await h.artifacts.get(id, ARTIFACTS.state)).toString()));
    expect(state.initialState).toBe('initialState');
    // Recompute with the library from the saved weights: from the given state, and (to show it matters) from zeros.
    const { stateDict } = safetensorsToStateDict(new Uint8Array(await h.artifacts.get(id, ARTIFACTS.model)));
    const lstm = lstmFrom(stateDict, 1);
    try {
      const [fromState, fromZeros] = tf.tidy(() => {
        const x = tf.tensor3d(stateInput.inputs);
        const a = lstm.forward(x, { h0: tf.tensor3d([h0]), c0: tf.tensor3d([c0]) });
        const b = lstm.forward(x);
        return [a.hN.arraySync(), b.hN.arraySync()];
      });
      expect(maxAbsDiff(state.h_n, fromState)).toBeLessThan(1e-5);
      expect(maxAbsDiff(state.h_n, fromZeros)).toBeGreaterThan(1e-3);
    } finally {
      lstm.dispose();
      tf.dispose(Object.values(stateDict));
    }
  });

  it('exits 0 on SIGTERM and removes its heartbeat', async () => {
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    expect(await h.redis.zcard(h.keys.workers())).toBe(0);
    expect(await h.redis.keys(`${h.prefix}:worker:*`)).toEqual([]);
  });
});
