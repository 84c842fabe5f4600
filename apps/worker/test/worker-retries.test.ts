/**
 * Retries and limits, with the compiled worker as real processes against the real Redis:
 * - a transient failure (the engine process killed mid-training, twice) fails the attempt, the
 *   worker survives, BullMQ retries after an exponential backoff (base 2000 ms: 2 s, then 4 s),
 *   each retry resumes from the checkpoint, and the third attempt completes;
 * - permanent failures (bad data: a dataset of the wrong width, a dataset file that is not JSON)
 *   fail at once: one attempt of three, `UnrecoverableError`, reason code `invalid_payload`;
 * - the wall-clock limit (8 s here): a training past JOB_TIMEOUT_TRAIN_MS stops at a batch boundary and fails
 *   with `timeout`, its checkpoint kept; one whose engine does not answer (SIGSTOP) is killed after
 *   SHUTDOWN_GRACE_MS and fails with `timeout` too; an inference past JOB_TIMEOUT_INFER_MS likewise.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import { decodeTrainingState } from '@relu-lstm/lstm';
import {
  CHECKPOINT_ARTIFACT,
  DEFAULT_JOB_POLICY,
  contract,
  openDatasetStore,
  type JobEvent,
  type LogEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { brief, Harness, tinyInlineInfer, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(180_000);

function trainPayload(
  epochs: number,
  data: Record<string, unknown> = { synthetic: { kind: 'sine', samples: 256, seqLen: 40 } },
) {
  return contract.TrainPayload.parse({
    model: { inputSize: 1, hiddenSize: 32, outputSize: 1 },
    data,
    training: { epochs, batchSize: 16, learningRate: 0.005, seed: 3, checkpointEvery: 1, progressEvery: 4 },
  });
}

const isState =
  (s: string) =>
  (e: JobEvent): e is StateEvent =>
    e.type === 'state' && e.state === s;
const isLog =
  (code: string) =>
  (e: JobEvent): e is LogEvent =>
    e.type === 'log' && e.code === code;

/** The engine child of a worker process. */
function enginePid(w: WorkerProcess): number {
  const pid = Number(
    execFileSync('pgrep', ['-P', String(w.proc.pid)])
      .toString()
      .trim()
      .split('\n')[0],
  );
  if (!(pid > 0)) throw new Error('no engine process');
  return pid;
}

async function failedState(h: Harness, id: string, w: WorkerProcess): Promise<StateEvent> {
  const events = await h.waitForEnd(id, 60_000, w);
  const end = events[events.length - 1] as StateEvent;
  expect(
    events
      .filter((e) => e.type === 'state')
      .map(brief)
      .slice(-1)[0],
  ).toBe(`state:failed(${end.error?.code})`);
  return end;
}

describe('transient failures', () => {
  let h: Harness;
  let w: WorkerProcess;
  beforeAll(async () => {
    h = new Harness();
    w = await h.startReadyWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('the engine killed twice: each attempt fails (internal), is retried after 2 s then 4 s, resumes, and the third completes', async () => {
    const policy = { ...DEFAULT_JOB_POLICY, attempts: { train: 3, infer: 2 }, backoffMs: 2000 };
    const id = await h.submit('train', trainPayload(12), { policy });
    for (const attempt of [1, 2]) {
      // Kill this attempt's engine once the attempt has written a checkpoint.
      await waitFor(
        async () => {
          const events = await h.allEvents(id);
          const start = events.findIndex((e) => isState('running')(e) && e.attempt === attempt);
          return start >= 0 && events.slice(start).some(isLog('checkpoint'));
        },
        60_000,
        () => `attempt ${attempt} wrote no checkpoint:\n${w.output()}`,
        w,
      );
      process.kill(enginePid(w), 'SIGKILL');
      await h.waitForEvent(
        id,
        (e) => isLog('attempt_failed')(e) && (e.data?.attemptsMade as number) === attempt,
        20_000,
        w,
      );
    }
    const events = await h.waitForEnd(id, 120_000, w);
    expect(events.filter((e) => e.type === 'state').map(brief)).toEqual([
      'state:queued',
      'state:running',
      'state:running',
      'state:running',
      'state:completed',
    ]);
    const failures = events.filter(isLog('attempt_failed'));
    expect(failures.map((f) => f.data!.error as { code: string; retryable: boolean })).toEqual([
      expect.objectContaining({ code: 'internal', retryable: true }),
      expect.objectContaining({ code: 'internal', retryable: true }),
    ]);
    // Exponential: the wait before attempt n+1 is 2000 * 2^(n-1) ms, so it doubles. (`attempt_failed`
    // is stamped just after BullMQ scheduled the retry, hence 10% of slack below the exact delay.)
    const running = events.filter(isState('running'));
    const waits = [0, 1].map((i) => running[i + 1].at - failures[i].at);
    expect(waits[0]).toBeGreaterThanOrEqual(1800);
    expect(waits[1]).toBeGreaterThanOrEqual(3600);
    expect(waits[1] - waits[0]).toBeGreaterThanOrEqual(1000);
    // Each retry resumed from a checkpoint of the attempt before.
    const resumed = events.filter(isLog('resumed'));
    expect(resumed.map((r) => r.data!.attempt)).toEqual([2, 3]);
    expect(resumed.every((r) => (r.data!.step as number) > 0)).toBe(true);
    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.attemptsMade).toBe(3); // BullMQ counts the attempt that completed too
    expect(job!.opts.backoff).toEqual({ type: 'exponential', delay: 2000 });
    expect(w.proc.exitCode).toBeNull(); // the worker itself never went down
    console.log(
      `retries: engine killed in attempts 1 and 2; backoff waits ${waits[0]} ms and ${waits[1]} ms (base 2000 ms, exponential); resumed at steps ${resumed.map((r) => r.data!.step).join(', ')}; completed on attempt 3`,
    );
  });
});

describe('permanent failures', () => {
  let h: Harness;
  let w: WorkerProcess;
  beforeAll(async () => {
    h = new Harness();
    w = await h.startReadyWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('bad data fails at once: one attempt of three, reason invalid_payload', async () => {
    const datasets = openDatasetStore(h.datasetDir);
    // Two features per step for a model of inputSize 1.
    const wide = randomUUID();
    await datasets.put(wide, {
      x: [
        [
          [1, 2],
          [3, 4],
        ],
        [
          [5, 6],
          [7, 8],
        ],
      ],
      y: [
        [[1], [2]],
        [[3], [4]],
      ],
    });
    // A dataset file that is not JSON (e.g. truncated on disk).
    const broken = randomUUID();
    await datasets.put(broken, { x: [[[1]]], y: [[[1]]] });
    writeFileSync(path.join(h.datasetDir, `${broken}.json`), '{"x": [[[1]');

    for (const [datasetId, field] of [
      [wide, /input/i],
      [broken, /not readable JSON/],
    ] as const) {
      const id = await h.submit('train', trainPayload(2, { datasetId }));
      const end = await failedState(h, id, w);
      expect(end.error).toMatchObject({ code: 'invalid_payload', retryable: false });
      expect(end.error!.message).toMatch(field);
      const job = await Job.fromId(h.queue('any'), id);
      expect(job!.attemptsMade).toBe(1);
      expect(job!.opts.attempts).toBe(3);
      const events = await h.allEvents(id);
      expect(events.filter(isLog('attempt_failed'))).toEqual([]);
      console.log(
        `permanent: dataset ${datasetId === wide ? 'of the wrong width' : 'not JSON'} -> failed after 1 attempt of 3, code ${end.error!.code}: ${end.error!.message.slice(0, 100)}`,
      );
    }
    expect(w.proc.exitCode).toBeNull();
  });
});

describe('wall-clock limits', () => {
  let h: Harness;
  let w: WorkerProcess;
  beforeAll(async () => {
    h = new Harness({ JOB_TIMEOUT_TRAIN_MS: '8000', JOB_TIMEOUT_INFER_MS: '2000', SHUTDOWN_GRACE_MS: '1500' });
    w = await h.startReadyWorker();
  });
  afterAll(async () => {
    await h?.close();
  });

  it('a training past JOB_TIMEOUT_TRAIN_MS stops at a batch boundary, fails with timeout, not retried, checkpoint kept', async () => {
    const id = await h.submit('train', trainPayload(500));
    const end = await failedState(h, id, w);
    const events = await h.allEvents(id);
    const running = events.find(isState('running'))!;
    expect(end.error).toMatchObject({
      code: 'timeout',
      retryable: false,
      details: { limitMs: 8000, epoch: expect.any(Number), step: expect.any(Number) },
    });
    const took = end.at - running.at;
    expect(took).toBeGreaterThanOrEqual(8000);
    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.attemptsMade).toBe(1);
    // The checkpoint of where it stopped is kept (the job could be resubmitted with fromJob, or retried by hand).
    const state = decodeTrainingState(new Uint8Array(await h.artifacts.get(id, CHECKPOINT_ARTIFACT)));
    expect(state.progress.globalStep).toBe(end.error!.details!.step);
    console.log(
      `timeout (train): limit 8000 ms; failed ${took} ms after it started, stopped at step ${state.progress.globalStep} with its checkpoint kept`,
    );
  });

  it('a training whose engine does not answer is killed after SHUTDOWN_GRACE_MS and fails with timeout; the worker carries on', async () => {
    const id = await h.submit('train', trainPayload(500));
    await h.waitForEvent(id, (e) => e.type === 'metric', 60_000, w);
    const engine = enginePid(w);
    process.kill(engine, 'SIGSTOP');
    try {
      const end = await failedState(h, id, w);
      expect(end.error).toMatchObject({ code: 'timeout', retryable: false, details: { limitMs: 8000 } });
      expect(end.error!.message).toMatch(/killed/);
      expect(w.output()).toMatch(/did not stop when asked; killing the engine/);
      const running = (await h.allEvents(id)).find(isState('running'))!;
      expect(end.at - running.at).toBeGreaterThanOrEqual(8000 + 1500);
      console.log(
        `timeout (hung engine): limit 8000 ms + grace 1500 ms; engine killed, job failed ${end.at - running.at} ms after it started`,
      );
    } finally {
      try {
        process.kill(engine, 'SIGCONT');
      } catch {
        // killed already
      }
    }
    // A new engine is forked for the next job (its start counts in that job's limit, hence 8 s).
    const next = await h.submit('train', trainPayload(1));
    const ev = await h.waitForEnd(next, 60_000, w);
    expect(ev.filter((e) => e.type === 'state').map(brief)).toEqual([
      'state:queued',
      'state:running',
      'state:completed',
    ]);
  });

  it('an inference past JOB_TIMEOUT_INFER_MS is stopped (engine killed) and fails with timeout', async () => {
    // Hold the (idle) engine so the request cannot be answered.
    const engine = enginePid(w);
    process.kill(engine, 'SIGSTOP');
    let id: string;
    try {
      id = await h.submit('infer', tinyInlineInfer(1));
      const end = await failedState(h, id, w);
      expect(end.error).toMatchObject({ code: 'timeout', retryable: false, details: { limitMs: 2000 } });
      const running = (await h.allEvents(id)).find(isState('running'))!;
      console.log(
        `timeout (infer): limit 2000 ms; engine killed, job failed ${end.at - running.at} ms after it started`,
      );
      const job = await Job.fromId(h.queue('any'), id);
      expect(job!.attemptsMade).toBe(1);
    } finally {
      try {
        process.kill(engine, 'SIGCONT');
      } catch {
        // killed already
      }
    }
    expect(w.proc.exitCode).toBeNull();
  });
});
