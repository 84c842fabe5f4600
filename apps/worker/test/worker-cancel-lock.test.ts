/**
 * Cancel and lock renewal, with the compiled worker as real processes against a real Redis:
 * - a running training stops at a batch boundary when its cancel flag is set, ends `cancelled`,
 *   is not retried, and leaves no checkpoint;
 * - with a lock duration of 1 s and a job that runs several seconds, on two workers that both run
 *   stalled checks every second, the job is never taken for stalled: it runs each epoch once.
 */
import { Job } from 'bullmq';
import {
  CHECKPOINT_ARTIFACT,
  TrainResultSchema,
  contract,
  type MetricEvent,
  type StateEvent,
  type TrainPayloadInput,
} from '@relu-lstm/jobs';
import { brief, Harness, tinyInlineInfer, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(120_000);

let h: Harness;

beforeAll(() => {
  h = new Harness();
});

afterAll(async () => {
  await h?.close();
});

/** ~16 steps of a 32-unit LSTM over 40 steps per epoch: a few hundred ms per epoch on wasm. */
function payload(epochs: number, extra: Partial<TrainPayloadInput['training']> = {}) {
  return contract.TrainPayload.parse({
    model: { inputSize: 1, hiddenSize: 32, outputSize: 1 },
    data: { synthetic: { kind: 'sine', samples: 256, seqLen: 40 } },
    training: { epochs, batchSize: 16, learningRate: 0.005, seed: 7, checkpointEvery: 1, progressEvery: 4, ...extra },
    device: 'any',
  });
}

describe('cancel', () => {
  let worker: WorkerProcess;
  beforeAll(async () => {
    worker = await h.startReadyWorker();
  });
  afterAll(async () => {
    worker.proc.kill('SIGTERM');
    await worker.exited;
  });

  it('stops a running training at the next batch boundary; the job ends cancelled and is not retried', async () => {
    const id = await h.submit('train', payload(500));
    // Wait until it is well under way (a checkpoint exists), then cancel.
    await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'checkpoint', 30_000, worker);
    // Its heartbeat names the job it runs.
    await waitFor(
      async () =>
        (await h.redis.mget(...(await h.redis.zrange(h.keys.workers(), 0, '-1')).map((w) => h.keys.worker(w)))).some(
          (hb) => hb !== null && JSON.parse(hb).currentJobId === id,
        ),
      5_000,
      () => 'no heartbeat names the running job',
    );
    const asked = Date.now();
    await h.redis.set(h.keys.cancel(id), JSON.stringify({ requestedAt: asked }));
    const events = await h.waitForEnd(id, 20_000, worker);
    const stoppedAfter = Date.now() - asked;

    const states = events.filter((e): e is StateEvent => e.type === 'state');
    expect(states.map((s) => s.state)).toEqual(['queued', 'running', 'cancelled']);
    expect(states[2].error?.code).toBe('cancelled');
    expect(states[2].error?.details).toEqual({ epoch: expect.any(Number), step: expect.any(Number) });
    const lastMetric = events.filter((e): e is MetricEvent => e.type === 'metric').pop()!;
    expect(lastMetric.epoch).toBeLessThan(499);

    const job = await Job.fromId(h.queue('any'), id);
    expect(await job!.getState()).toBe('failed');
    expect(job!.attemptsMade).toBe(1); // 3 attempts allowed, none used again
    expect(await h.artifacts.exists(id, CHECKPOINT_ARTIFACT)).toBe(false);
    expect(await h.redis.exists(h.keys.checkpoint(id))).toBe(0);
    // Polled every 200 ms here, then one batch: well under two seconds.
    expect(stoppedAfter).toBeLessThan(5_000);
    console.log(`cancel: job ended ${stoppedAfter} ms after the flag was set, at epoch ${lastMetric.epoch}`);

    // The worker takes the next job.
    const next = await h.submit('train', payload(1));
    const ev = await h.waitForEnd(next, 30_000, worker);
    expect(ev.some((e) => e.type === 'state' && e.state === 'completed')).toBe(true);
  });

  it('runs one job at a time across its queues: an infer job on `cpu` waits for a training on `any`', async () => {
    const train = await h.submit('train', payload(6));
    await h.waitForEvent(train, (e) => e.type === 'metric', 30_000, worker);
    const infer = await h.submit('infer', { ...tinyInlineInfer(1), device: 'cpu' });
    const trainEvents = await h.waitForEnd(train, 30_000, worker);
    const inferEvents = await h.waitForEnd(infer, 30_000, worker);
    const lastMetric = trainEvents.filter((e) => e.type === 'metric').pop()!;
    const inferRunning = inferEvents.find((e): e is StateEvent => e.type === 'state' && e.state === 'running')!;
    expect(inferEvents.filter((e) => e.type === 'state').map(brief)).toEqual([
      'state:queued',
      'state:running',
      'state:completed',
    ]);
    expect(inferRunning.at).toBeGreaterThanOrEqual(lastMetric.at);
  });

  it('does not start a job whose cancel flag is already set', async () => {
    worker.proc.kill('SIGSTOP'); // hold the worker so the flag is there before it fetches
    try {
      const id = await h.submit('train', payload(1));
      await h.redis.set(h.keys.cancel(id), JSON.stringify({ requestedAt: Date.now() }));
      worker.proc.kill('SIGCONT');
      const events = await h.waitForEnd(id, 20_000, worker);
      expect(events.filter((e) => e.type === 'state').map(brief)).toEqual([
        'state:queued',
        'state:cancelled(cancelled)',
      ]);
      expect(events.some((e) => e.type === 'metric')).toBe(false);
    } finally {
      worker.proc.kill('SIGCONT');
    }
  });
});

describe('lock renewal', () => {
  it('a job running far longer than a 1 s lock, with two workers checking for stalls every second, runs each epoch once', async () => {
    const env = { LOCK_DURATION_MS: '1000', STALLED_INTERVAL_MS: '1000' };
    const [a, b] = await Promise.all([h.startReadyWorker(env), h.startReadyWorker(env)]);
    // 100 epochs: 7-13 s on an idle 2-core machine with the fused cpu kernels (40 took 4 s, too
    // few lock durations to prove anything), a minute or more under a loaded parallel test run.
    const epochs = 100;
    const t0 = Date.now();
    const id = await h.submit('train', payload(epochs, { checkpointEvery: 5 }));
    const events = await h.waitForEnd(id, 170_000);
    const ms = Date.now() - t0;

    const states = events.filter((e): e is StateEvent => e.type === 'state');
    expect(states.map((s) => s.state)).toEqual(['queued', 'running', 'completed']);
    expect(events.filter((e) => e.type === 'log' && (e.code === 'stalled' || e.code === 'resumed'))).toEqual([]);
    const ends = events.filter((e): e is MetricEvent => e.type === 'metric' && e.epochEnd === true).map((m) => m.epoch);
    expect(ends).toEqual(Array.from({ length: epochs }, (_, i) => i));
    const result = TrainResultSchema.parse(states[2].result);
    expect(result.steps).toBe(epochs * 16);

    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.attemptsStarted).toBe(1);
    expect(job!.stalledCounter).toBe(0);
    expect(ms).toBeGreaterThan(5_000); // the point: many lock durations
    console.log(`lock: ${epochs} epochs in ${ms} ms under a 1000 ms lock, ${job!.attemptsStarted} attempt, 0 stalls`);

    a.proc.kill('SIGTERM');
    b.proc.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(await b.exited).toBe(0);
  }, 200_000);
});
