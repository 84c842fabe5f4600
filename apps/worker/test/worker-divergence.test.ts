/**
 * The divergence guard, with the compiled worker as a real process against a real Redis, on the cpu
 * backend (deterministic): deliberately unstable trainings (a ReLU-LSTM, a high learning rate, no
 * clipping). On a non-finite loss or gradient the worker rolls back to the last good state, divides
 * the learning rate by 2 and retries, recording each rollback in the job's event stream; a job that
 * recovers completes, one that does not fails with `diverged` (epoch and step) in one attempt.
 */
import { Job } from 'bullmq';
import {
  DIVERGENCE_ROLLBACK,
  DivergenceRollbackSchema,
  TrainResultSchema,
  contract,
  decodeJobError,
  type JobEvent,
  type LogEvent,
  type MetricEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { Harness, brief, type WorkerProcess } from './harness';

jest.setTimeout(180_000);

const RETRIES = 3;
let h: Harness;
let worker: WorkerProcess;

beforeAll(async () => {
  h = new Harness({ RELU_LSTM_BACKEND: 'cpu', DIVERGENCE_RETRIES: String(RETRIES), DIVERGENCE_LR_FACTOR: '0.5' });
  worker = await h.startReadyWorker();
});

afterAll(async () => {
  await h?.close();
});

/** A small ReLU-LSTM on noisy sines, no clipping. */
function unstable(optimizer: 'sgd' | 'adam', learningRate: number, epochs: number) {
  return contract.TrainPayload.parse({
    model: { inputSize: 1, hiddenSize: 8, numLayers: 1, activation: 'relu', outputSize: 1 },
    data: { synthetic: { kind: 'sine', samples: 64, seqLen: 20 } },
    training: { epochs, batchSize: 16, optimizer, learningRate, seed: 1, checkpointEvery: 1, progressEvery: 1 },
    device: 'any',
  });
}

const rollbacksOf = (events: JobEvent[]) =>
  events
    .filter((e): e is LogEvent => e.type === 'log' && e.code === DIVERGENCE_ROLLBACK)
    .map((e) => DivergenceRollbackSchema.parse(e.data));

describe('divergence guard', () => {
  it('rolls back with halved learning rates and completes once the training is stable', async () => {
    const id = await h.submit('train', unstable('sgd', 5, 10));
    const events = await h.waitForEnd(id, 150_000, worker);
    const rollbacks = rollbacksOf(events);
    console.log(
      `recovering job: ${rollbacks.length} rollback(s): ${JSON.stringify(rollbacks)}\nevents: ${events.map(brief).join(' ')}`,
    );
    const end = events[events.length - 1] as StateEvent;
    expect(end.state).toBe('completed');
    expect(rollbacks.length).toBeGreaterThanOrEqual(1);
    expect(rollbacks.length).toBeLessThanOrEqual(RETRIES);
    rollbacks.forEach((r, i) => {
      expect(r.retry).toBe(i + 1);
      expect(r.retries).toBe(RETRIES);
      expect(r.previousLearningRate).toBeCloseTo(5 / 2 ** i, 10);
      expect(r.learningRate).toBeCloseTo(5 / 2 ** (i + 1), 10);
      expect(['NaN', 'Infinity', '-Infinity']).toContain(r.value);
      // Back to a state before the failing step.
      expect(r.to.step).toBeLessThanOrEqual(r.step);
    });
    // It diverges after several epochs: the rollbacks go to the last checkpoint, not the start.
    expect(rollbacks.every((r) => r.to.source === 'checkpoint' && r.to.step > 0)).toBe(true);
    expect(events.some((e) => e.type === 'log' && e.code === 'tensor_leak')).toBe(false);
    // The metric points after the last rollback carry its learning rate, and the training finished.
    const lastRollbackAt = events.findIndex(
      (e) =>
        e.type === 'log' && e.code === DIVERGENCE_ROLLBACK && (e.data as { retry: number }).retry === rollbacks.length,
    );
    const after = events.slice(lastRollbackAt).filter((e): e is MetricEvent => e.type === 'metric');
    expect(after.length).toBeGreaterThan(0);
    for (const m of after) expect(m.learningRate).toBeCloseTo(rollbacks[rollbacks.length - 1].learningRate, 10);
    const result = TrainResultSchema.parse(end.result);
    expect(result.epochs).toBe(10);
    expect(Number.isFinite(result.finalLoss)).toBe(true);
    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.attemptsMade).toBe(1);
    // metrics.csv holds one row per step actually kept (the rolled-back points are cut), steps increasing.
    const csv = (await h.artifacts.get(id, 'metrics.csv')).toString('utf8').trim().split('\n').slice(1);
    const steps = csv.map((line) => Number(line.split(',')[1]));
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    expect(new Set(steps).size).toBe(steps.length);
  });

  it(`fails with 'diverged', the epoch and the step after ${RETRIES} rollbacks, in one attempt`, async () => {
    const id = await h.submit('train', unstable('adam', 10, 3));
    const events = await h.waitForEnd(id, 150_000, worker);
    const rollbacks = rollbacksOf(events);
    console.log(`failing job: ${rollbacks.length} rollback(s): ${JSON.stringify(rollbacks)}`);
    const end = events[events.length - 1] as StateEvent;
    expect(end.state).toBe('failed');
    expect(rollbacks.map((r) => r.learningRate)).toEqual([5, 2.5, 1.25]);
    // It blows up at its second step, before any checkpoint: every rollback rebuilds the seeded weights.
    expect(rollbacks.every((r) => r.to.source === 'start' && r.to.step === 0)).toBe(true);
    expect(events.some((e) => e.type === 'log' && e.code === 'tensor_leak')).toBe(false);
    expect(end.error!.code).toBe('diverged');
    expect(end.error!.retryable).toBe(false);
    const d = end.error!.details as {
      epoch: number;
      step: number;
      rollbacks: number;
      learningRate: number;
      quantity: string;
    };
    expect(Number.isInteger(d.epoch)).toBe(true);
    expect(Number.isInteger(d.step)).toBe(true);
    expect(d.rollbacks).toBe(RETRIES);
    expect(d.learningRate).toBe(1.25);
    expect(end.error!.message).toMatch(new RegExp(`epoch ${d.epoch}, step ${d.step}`));
    // UnrecoverableError: one attempt, no retry, one `running` event.
    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.attemptsMade).toBe(1);
    expect(decodeJobError(job!.failedReason).code).toBe('diverged');
    expect(events.filter((e) => e.type === 'state' && e.state === 'running')).toHaveLength(1);
    expect(events.some((e) => e.type === 'log' && e.code === 'attempt_failed')).toBe(false);
  });
});
