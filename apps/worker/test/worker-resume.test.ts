/**
 * Surviving the loss of a worker, with the compiled worker as real processes against a real Redis:
 * - SIGKILL mid-training: the job's lock lapses, a second worker's stalled check puts it back, and
 *   that worker resumes from the last checkpoint (not epoch 0) and completes it;
 * - SIGTERM mid-training: the worker checkpoints at the current batch, puts the job back in the
 *   queue, exits 0, and the next worker resumes from that very step.
 */
import { execFileSync } from 'node:child_process';
import { Job } from 'bullmq';
import { decodeTrainingState } from '@relu-lstm/lstm';
import {
  ARTIFACTS,
  CHECKPOINT_ARTIFACT,
  TrainResultSchema,
  contract,
  type JobEvent,
  type LogEvent,
  type MetricEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { Harness, waitFor } from './harness';

jest.setTimeout(120_000);

let h: Harness;

beforeAll(() => {
  h = new Harness();
});

afterAll(async () => {
  await h?.close();
});

const EPOCHS = 30;
const STEPS_PER_EPOCH = 16;
const payload = contract.TrainPayload.parse({
  model: { inputSize: 1, hiddenSize: 32, outputSize: 1 },
  data: { synthetic: { kind: 'sine', samples: 256, seqLen: 40 } },
  training: { epochs: EPOCHS, batchSize: 16, learningRate: 0.005, seed: 11, checkpointEvery: 2, progressEvery: 4 },
});

/** What the job's checkpoint file says (the truth about where a resume starts). */
async function checkpointPosition(id: string): Promise<{ epoch: number; step: number; stepInEpoch: number }> {
  const s = decodeTrainingState(new Uint8Array(await h.artifacts.get(id, CHECKPOINT_ARTIFACT)));
  return { epoch: s.progress.epoch, step: s.progress.globalStep, stepInEpoch: s.progress.stepInEpoch };
}

function checkCompletedRun(events: JobEvent[], resumed: LogEvent, from: { epoch: number; step: number }) {
  const states = events.filter((e): e is StateEvent => e.type === 'state');
  expect(states[states.length - 1].state).toBe('completed');
  const result = TrainResultSchema.parse(states[states.length - 1].result);
  expect(result).toMatchObject({ epochs: EPOCHS, steps: EPOCHS * STEPS_PER_EPOCH, resumedFromEpoch: from.epoch });
  // After the resume, training continued from the checkpoint, not from the start.
  const after = events.slice(events.indexOf(resumed) + 1).filter((e): e is MetricEvent => e.type === 'metric');
  expect(after.length).toBeGreaterThan(0);
  expect(Math.min(...after.map((m) => m.epoch))).toBe(from.epoch);
  expect(Math.min(...after.map((m) => m.step))).toBeGreaterThan(from.step);
  expect(after.filter((m) => m.epochEnd).map((m) => m.epoch)).toEqual(
    Array.from({ length: EPOCHS - from.epoch }, (_, i) => from.epoch + i),
  );
  return result;
}

async function metricsCsvSteps(id: string): Promise<number[]> {
  const lines = (await h.artifacts.get(id, ARTIFACTS.metrics)).toString().trim().split('\n').slice(1);
  return lines.map((l) => Number(l.split(',')[1]));
}

it('SIGKILL mid-training: another worker resumes from the last checkpoint and completes the job', async () => {
  const a = await h.startReadyWorker({ LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' });
  const id = await h.submit('train', payload);
  await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'checkpoint' && Number(e.data?.epoch) >= 4, 60_000, a);
  a.proc.kill('SIGKILL');
  expect(await a.exited).toBe('SIGKILL');
  const killedAt = Date.now();
  const from = await checkpointPosition(id);
  expect(from.epoch).toBeGreaterThanOrEqual(4);
  expect(from.stepInEpoch).toBe(0);

  const b = await h.startReadyWorker({ LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000' });
  const resumedEvents = await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'resumed', 30_000, b);
  const recovery = Date.now() - killedAt;
  const events = await h.waitForEnd(id, 90_000, b);
  const resumed = events.find((e): e is LogEvent => e.type === 'log' && e.code === 'resumed')!;
  expect(resumed.data).toMatchObject({ epoch: from.epoch, step: from.step });
  expect(resumedEvents.some((e) => e.type === 'log' && e.code === 'stalled')).toBe(true);
  const result = checkCompletedRun(events, resumed, from);

  // One running event per worker, one completion; metrics.csv has every step once, in order.
  expect(events.filter((e) => e.type === 'state').map((e) => (e as StateEvent).state)).toEqual([
    'queued',
    'running',
    'running',
    'completed',
  ]);
  const steps = await metricsCsvSteps(id);
  expect(steps).toEqual([...new Set(steps)].sort((x, y) => x - y));
  expect(steps[steps.length - 1]).toBe(EPOCHS * STEPS_PER_EPOCH);
  expect(await h.artifacts.exists(id, CHECKPOINT_ARTIFACT)).toBe(false);
  const job = await Job.fromId(h.queue('any'), id);
  expect(job!.stalledCounter).toBe(1);
  console.log(
    `SIGKILL: checkpoint at epoch ${from.epoch}; resumed ${recovery} ms after the kill; ${result.elapsedMs} ms of training in all`,
  );

  b.proc.kill('SIGTERM');
  expect(await b.exited).toBe(0);
});

it('SIGTERM mid-training: the worker checkpoints the current batch, releases the job, exits 0; the next worker resumes there', async () => {
  const a = await h.startReadyWorker();
  const id = await h.submit('train', payload);
  await h.waitForEvent(id, (e) => e.type === 'metric' && e.epoch >= 3 && !e.epochEnd, 60_000, a);
  const t0 = Date.now();
  a.proc.kill('SIGTERM');
  expect(await a.exited).toBe(0);
  const exitMs = Date.now() - t0;
  const released = (await h.allEvents(id)).find((e): e is LogEvent => e.type === 'log' && e.code === 'released');
  expect(released).toBeDefined();
  const from = await checkpointPosition(id);
  expect(from).toMatchObject({ epoch: released!.data!.epoch, step: released!.data!.step });
  expect(from.epoch).toBeGreaterThanOrEqual(3);
  // Back in the queue at once, no attempt used, no heartbeat left.
  const job = await Job.fromId(h.queue('any'), id);
  expect(await job!.getState()).toBe('prioritized'); // every job has a BullMQ priority (producer.ts FAIR_SHARE)
  expect(job!.attemptsMade).toBe(0);
  expect(await h.redis.zcard(h.keys.workers())).toBe(0);

  const b = await h.startReadyWorker();
  const events = await h.waitForEnd(id, 90_000, b);
  const resumed = events.find((e): e is LogEvent => e.type === 'log' && e.code === 'resumed')!;
  expect(resumed.data).toMatchObject({ epoch: from.epoch, step: from.step, stepInEpoch: from.stepInEpoch });
  checkCompletedRun(events, resumed, from);
  const steps = await metricsCsvSteps(id);
  expect(steps).toEqual([...new Set(steps)].sort((x, y) => x - y));
  console.log(
    `SIGTERM: exited 0 in ${exitMs} ms, released at epoch ${from.epoch} step ${from.step} (batch ${from.stepInEpoch} of the epoch)`,
  );

  b.proc.kill('SIGTERM');
  expect(await b.exited).toBe(0);
  await waitFor(
    async () => (await h.redis.zcard(h.keys.workers())) === 0,
    5_000,
    () => 'heartbeat left behind',
  );
});

it('the engine process dying mid-training fails the attempt (retryable); the retry resumes from the checkpoint', async () => {
  const a = await h.startReadyWorker();
  const id = await h.submit('train', payload);
  await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'checkpoint' && Number(e.data?.epoch) >= 2, 60_000, a);
  const engine = Number(
    execFileSync('pgrep', ['-P', String(a.proc.pid)])
      .toString()
      .trim()
      .split('\n')[0],
  );
  expect(engine).toBeGreaterThan(0);
  process.kill(engine, 'SIGKILL');
  const failedAt = await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'attempt_failed', 10_000, a);
  const attemptFailed = failedAt.find((e): e is LogEvent => e.type === 'log' && e.code === 'attempt_failed')!;
  expect((attemptFailed.data?.error as { code: string }).code).toBe('internal');
  const from = await checkpointPosition(id);
  // planJob's backoff: 5 s before the second attempt, which forks a new engine.
  const events = await h.waitForEnd(id, 90_000, a);
  const running = events.filter((e): e is StateEvent => e.type === 'state' && e.state === 'running');
  expect(running.map((r) => r.attempt)).toEqual([1, 2]);
  const resumed = events.find((e): e is LogEvent => e.type === 'log' && e.code === 'resumed')!;
  expect(resumed.data).toMatchObject({ epoch: from.epoch, step: from.step, attempt: 2 });
  checkCompletedRun(events, resumed, from);
  expect(a.proc.exitCode).toBeNull();
  a.proc.kill('SIGTERM');
  expect(await a.exited).toBe(0);
});
