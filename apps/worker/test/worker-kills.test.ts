/**
 * Worker crashes and pauses during one training, with the compiled worker as real processes against
 * the real Redis, on the cpu backend (deterministic):
 * - SIGKILL of the worker holding the job, three times: the job completes; each kill repeats at
 *   most one checkpoint interval; one artifact set, one `completed` event; the final weights equal
 *   an uninterrupted run's to 1e-6;
 * - SIGSTOP of the worker holding the job past its lock, SIGCONT after another worker finished it:
 *   the paused worker writes no artifact, overwrites nothing, and emits no second completion; on
 *   the file store and on a real S3 server (s3rver).
 *
 * Settings (documented in docs/worker.md, "Locks and stalls"): LOCK_DURATION_MS=2000,
 * STALLED_INTERVAL_MS=1000, MAX_STALLED_COUNT=3 (the default: the job survives exactly 3 deaths).
 */
import { Job } from 'bullmq';
import { decodeSafetensors } from '@relu-lstm/lstm';
import {
  ARTIFACTS,
  PublishedSetSchema,
  TrainResultSchema,
  contract,
  type JobEvent,
  type LogEvent,
  type MetricEvent,
  type StateEvent,
} from '@relu-lstm/jobs';
import { S3Server } from '../../../libs/jobs/test/s3-server';
import { Harness, brief, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(300_000);

const ENV = { RELU_LSTM_BACKEND: 'cpu', LOCK_DURATION_MS: '2000', STALLED_INTERVAL_MS: '1000', MAX_STALLED_COUNT: '3' };
const STEPS_PER_EPOCH = 8;
const CHECKPOINT_EVERY = 2;
const INTERVAL_STEPS = CHECKPOINT_EVERY * STEPS_PER_EPOCH;

function payload(epochs: number, extra: Record<string, unknown> = {}) {
  return contract.TrainPayload.parse({
    model: { inputSize: 1, hiddenSize: 16, outputSize: 1 },
    data: { synthetic: { kind: 'sine', samples: 128, seqLen: 20 } },
    training: {
      epochs,
      batchSize: 16,
      optimizer: 'adam',
      learningRate: 0.01,
      seed: 5,
      clipNorm: 1,
      checkpointEvery: CHECKPOINT_EVERY,
      progressEvery: 1,
      ...extra,
    },
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

const TRAIN_ARTIFACTS = [ARTIFACTS.config, ARTIFACTS.metrics, ARTIFACTS.model, ARTIFACTS.state].sort();

/**
 * The job's stored objects are exactly its published set, in the stage its attempt wrote (no
 * checkpoint, no other stage, no temporary); returns the published stage.
 */
async function expectOnlyPublishedSet(h: Harness, id: string): Promise<string> {
  const set = PublishedSetSchema.parse(JSON.parse((await h.redis.get(h.keys.published(id)))!));
  expect(set.layout).toBe('attempt');
  expect([...set.names].sort()).toEqual(TRAIN_ARTIFACTS);
  expect(await h.storedObjects(id)).toEqual(TRAIN_ARTIFACTS.map((n) => `.stage-${set.stage}/${n}`));
  expect((await h.artifacts.list(id)).map((a) => a.name)).toEqual(TRAIN_ARTIFACTS);
  return set.stage;
}

function weightsOf(bytes: Buffer): Record<string, Float32Array> {
  const { tensors } = decodeSafetensors(new Uint8Array(bytes));
  return Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.data as Float32Array]));
}

describe('three SIGKILLs during one training', () => {
  let h: Harness;
  let ref: Harness;
  beforeAll(() => {
    h = new Harness(ENV);
    ref = new Harness(ENV);
  });
  afterAll(async () => {
    await Promise.all([h?.close(), ref?.close()]);
  });

  it('completes, repeats at most one checkpoint interval per kill, one artifact set, one completion, weights equal an uninterrupted run to 1e-6', async () => {
    const EPOCHS = 40;
    const p = payload(EPOCHS);
    // The uninterrupted run of the same payload, on its own prefix, at the same time.
    const refWorker = await ref.startReadyWorker({ WORKER_ID: 'ref' });
    const refId = await ref.submit('train', p);

    const workers = new Map<string, WorkerProcess>();
    const start = async (name: string) => workers.set(name, await h.startReadyWorker({ WORKER_ID: name }));
    await Promise.all([start('w0'), start('w1')]);
    const id = await h.submit('train', p);

    // How far into a checkpoint interval each kill lands (an interval is 16 steps).
    const KILL_OFFSETS = [3, 8, 12];
    const kills: Array<{ worker: string; at: number; lastStep: number; checkpointStep: number }> = [];
    const recoveries: Array<{ ms: number; from: number; repeated: number }> = [];
    for (let k = 0; k < 3; k++) {
      // The holder: the worker of the latest `running` event.
      let events = await h.waitForEvent(id, (e) => e.type === 'state' && e.state === 'running', 60_000);
      const running = events.filter(isState('running'));
      const holder = String(running[running.length - 1].workerId);
      const since = events.length;
      // Past a checkpoint of this attempt, and a few steps into the next interval.
      events = await h.waitForEvent(id, (e) => e.type === 'log' && e.code === 'checkpoint', 120_000);
      let ckpt = 0;
      await waitFor(
        async () => {
          events = await h.allEvents(id);
          const mine = events.slice(since);
          const c = mine.filter(isLog('checkpoint')).pop();
          if (!c) return false;
          ckpt = Number(c.data!.step);
          return mine.some((e) => e.type === 'metric' && e.step >= ckpt + KILL_OFFSETS[k]);
        },
        120_000,
        () => `no checkpoint and progress after it by ${holder}: ${events.slice(since).map(brief).join(' ')}`,
      );
      workers.get(holder)!.proc.kill('SIGKILL');
      expect(await workers.get(holder)!.exited).toBe('SIGKILL');
      const at = Date.now();
      workers.delete(holder);
      const after = await h.allEvents(id);
      const lastStep = Math.max(...after.filter((e): e is MetricEvent => e.type === 'metric').map((m) => m.step));
      kills.push({ worker: holder, at, lastStep, checkpointStep: ckpt });
      // A replacement, so that one worker is always idle and watching for stalls.
      const replacement = start(`w${k + 2}`);
      const resumedEvents = await h.waitForEvent(
        id,
        (e) => e.type === 'log' && e.code === 'resumed' && e.at >= at,
        60_000,
      );
      const resumed = resumedEvents.filter(isLog('resumed')).pop()!;
      const from = Number(resumed.data!.step);
      recoveries.push({ ms: resumed.at - at, from, repeated: lastStep - from });
      await replacement;
    }

    const events = await h.waitForEnd(id, 180_000);
    const refEvents = await ref.waitForEnd(refId, 180_000, refWorker);
    expect(refEvents.filter(isState('completed'))).toHaveLength(1);

    // One completion, after one `running` per worker that held the job.
    const states = events.filter((e): e is StateEvent => e.type === 'state').map((s) => s.state);
    expect(states).toEqual(['queued', 'running', 'running', 'running', 'running', 'completed']);
    const result = TrainResultSchema.parse(events.find(isState('completed'))!.result);
    expect(result.steps).toBe(EPOCHS * STEPS_PER_EPOCH);
    const job = await Job.fromId(h.queue('any'), id);
    expect(job!.stalledCounter).toBe(3);
    expect(await job!.getState()).toBe('completed');

    // Each kill repeated at most one checkpoint interval: the resume started from the last
    // checkpoint written before the kill, and no further back than one interval.
    for (let k = 0; k < 3; k++) {
      expect(recoveries[k].from).toBeGreaterThanOrEqual(kills[k].checkpointStep);
      // 0 when the kill lands just after the next checkpoint (the fused cpu loop can pass a whole
      // interval between the last poll and the signal); never negative: no resume ahead of the work.
      expect(recoveries[k].repeated).toBeGreaterThanOrEqual(0);
      expect(recoveries[k].repeated).toBeLessThanOrEqual(INTERVAL_STEPS);
    }
    // metrics.csv: every step once, in order.
    const steps = (await h.artifacts.get(id, ARTIFACTS.metrics))
      .toString()
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => Number(l.split(',')[1]));
    expect(steps).toEqual(Array.from({ length: EPOCHS * STEPS_PER_EPOCH }, (_, i) => i + 1));

    // One artifact set: the four files, no checkpoint, no other stage or temporary left.
    await expectOnlyPublishedSet(h, id);
    const published = JSON.parse((await h.redis.get(h.keys.published(id)))!);
    const config = JSON.parse((await h.artifacts.get(id, ARTIFACTS.config)).toString());
    expect(published).toMatchObject({ workerId: config.worker.id, result });

    // The same weights as the run that was never interrupted.
    const got = weightsOf(await h.artifacts.get(id, ARTIFACTS.model));
    const want = weightsOf(await ref.artifacts.get(refId, ARTIFACTS.model));
    expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
    let maxDiff = 0;
    for (const k of Object.keys(want)) {
      expect(got[k].length).toBe(want[k].length);
      for (let i = 0; i < want[k].length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[k][i] - want[k][i]));
    }
    expect(maxDiff).toBeLessThanOrEqual(1e-6);

    console.log(
      `3 SIGKILLs survived (MAX_STALLED_COUNT 3, lock 2000 ms, stalled check 1000 ms, checkpoint every ${INTERVAL_STEPS} steps): ` +
        recoveries
          .map(
            (r, k) =>
              `kill ${k + 1} at step ${kills[k].lastStep}: resumed from step ${r.from} after ${r.ms} ms, ${r.repeated} steps repeated`,
          )
          .join('; ') +
        `; final weights vs uninterrupted run: max |diff| ${maxDiff}`,
    );
  });
});

const S3_BUCKET = 'kills';

describe.each(['file', 's3 (s3rver)'])('a worker paused past its lock, on the %s store', (store) => {
  let h: Harness;
  let s3: S3Server | undefined;
  beforeAll(async () => {
    if (store === 'file') {
      h = new Harness(ENV);
      return;
    }
    s3 = await S3Server.start();
    await s3.createBucket(S3_BUCKET);
    h = new Harness({ ...ENV, ...s3.env(), ARTIFACT_DIR: `s3://${S3_BUCKET}/artifacts` });
  });
  afterAll(async () => {
    await h?.close();
    await s3?.stop();
  });

  it('SIGSTOP, another worker finishes the job, SIGCONT: the paused one writes nothing and emits no second completion', async () => {
    const a = await h.startReadyWorker({ WORKER_ID: 'paused' });
    // Few messages per epoch, so the paused worker's engine can train on to the end meanwhile
    // and hand it a finished run to publish when it wakes up.
    const id = await h.submit('train', payload(30, { progressEvery: 1000, checkpointEvery: 5 }));
    await h.waitForEvent(
      id,
      (e) => e.type === 'log' && e.code === 'checkpoint' && Number(e.data?.epoch) >= 5,
      120_000,
      a,
    );
    a.proc.kill('SIGSTOP');
    const stoppedAt = Date.now();
    try {
      const b = await h.startReadyWorker({ WORKER_ID: 'winner' });
      const events = await h.waitForEnd(id, 180_000, b);
      expect(events.filter(isState('completed'))).toHaveLength(1);
      const stage = await expectOnlyPublishedSet(h, id);
      const listed = await h.artifacts.list(id);
      const before = await Promise.all(
        listed.map(async (a) => ({ n: a.name, bytes: await h.artifacts.get(id, a.name), at: a.modifiedAt })),
      );
      expect(JSON.parse(before.find((s) => s.n === ARTIFACTS.config)!.bytes.toString()).worker.id).toBe('winner');
      const pausedFor = Date.now() - stoppedAt;

      a.proc.kill('SIGCONT');
      // It wakes with its engine's messages queued: it must find out it lost the job and say so.
      await waitFor(
        () => /lost (its|the job's) lock/.test(a.output()),
        30_000,
        () => `the paused worker never noticed it lost the lock:\n${a.output()}`,
        a,
      );
      await new Promise((r) => setTimeout(r, 3000)); // time for anything it might still write
      const after = await h.artifacts.list(id);
      for (const s of before) {
        expect((await h.artifacts.get(id, s.n)).equals(s.bytes)).toBe(true);
        expect(after.find((a) => a.name === s.n)?.modifiedAt).toBe(s.at);
      }
      // No checkpoint, stage or temporary from it (a stage of its own it discards on refusal).
      expect(await expectOnlyPublishedSet(h, id)).toBe(stage);
      const all = await h.allEvents(id);
      expect(all.filter(isState('completed'))).toHaveLength(1);
      expect(all.filter((e) => e.type === 'state' && (e.state === 'failed' || e.state === 'cancelled'))).toEqual([]);
      // Nothing it had queued while paused (metrics, checkpoints) reached the stream either.
      expect(all.slice(all.findIndex(isState('completed')) + 1).map(brief)).toEqual([]);
      const job = await Job.fromId(h.queue('any'), id);
      expect(await job!.getState()).toBe('completed');
      expect(job!.returnvalue).toEqual(all.find(isState('completed'))!.result);
      // Which guard stopped it: its engine had usually finished too, so it tried to publish and the
      // Lua fence refused; otherwise the lock watchdog stopped the run first.
      const refusedPublication = /not publishing its artifacts/.test(a.output());
      console.log(
        `SIGSTOP (${store} store): paused ${pausedFor} ms; the other worker finished the job; after SIGCONT the paused one wrote 0 files and emitted 0 completions ` +
          `(${refusedPublication ? 'its finished run was refused publication by the lock fence' : 'the lock watchdog stopped its run before it finished'})`,
      );

      // And it carries on: the next job runs on it normally.
      b.proc.kill('SIGTERM');
      expect(await b.exited).toBe(0);
      const next = await h.submit('train', payload(1));
      const ev = await h.waitForEnd(next, 60_000, a);
      expect(ev.filter(isState('completed'))).toHaveLength(1);
    } finally {
      a.proc.kill('SIGCONT');
    }
  });
});

describe('a worker that died after publishing, before its job was recorded complete', () => {
  let h: Harness;
  beforeAll(() => {
    h = new Harness(ENV);
  });
  afterAll(async () => {
    await h?.close();
  });

  it("the next attempt trains nothing: the published set and its result are the job's; the rest is tidied", async () => {
    // What the dead attempt left: its staged set, the published record (its fencing step), a
    // checkpoint and another attempt's stage; the job is still queued.
    const id = await h.submit('train', payload(40));
    const result = TrainResultSchema.parse({
      epochs: 40,
      steps: 40 * STEPS_PER_EPOCH,
      finalLoss: 0.0123,
      finalValLoss: null,
      samplesPerSec: 1,
      elapsedMs: 1,
      resumedFromEpoch: null,
      backend: 'dead-attempt',
      gpu: false,
      artifacts: TRAIN_ARTIFACTS,
    });
    const stage = 'deadbeef';
    for (const n of TRAIN_ARTIFACTS) await h.artifacts.stage(id, stage, n, `${n} of the dead attempt`);
    await h.artifacts.stage(id, 'other', ARTIFACTS.model, 'never published');
    await h.artifacts.put(id, 'checkpoint.safetensors', 'a checkpoint');
    const record = { stage, names: TRAIN_ARTIFACTS, layout: 'attempt', attempt: 1, workerId: 'dead', at: 1, result };
    await h.redis.set(h.keys.published(id), JSON.stringify(record));

    const w = await h.startReadyWorker({ WORKER_ID: 'next' });
    const events = await h.waitForEnd(id, 60_000, w);
    const completed = events.find(isState('completed'))!;
    expect(completed.result).toEqual(result);
    expect(events.filter(isLog('published_earlier'))).toHaveLength(1);
    expect(events.some((e) => e.type === 'metric')).toBe(false); // no step trained
    expect((await h.artifacts.get(id, ARTIFACTS.model)).toString()).toBe(`${ARTIFACTS.model} of the dead attempt`);
    expect(await expectOnlyPublishedSet(h, id)).toBe(stage);
  });
});
