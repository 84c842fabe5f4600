/**
 * Retention, with the compiled worker as a real process against a real Redis: a finished job's own
 * records (meta, event stream, tenant index entry, cancel flag, checkpoint pointer) and its artifact
 * directory follow BullMQ's removeOnComplete / removeOnFail: they expire with the keep-age of the
 * outcome, and the count-based trim keeps only the newest N.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { Job } from 'bullmq';
import { DEFAULT_JOB_POLICY, contract, type JobPolicy } from '@relu-lstm/jobs';
import { Harness, tinyInlineInfer, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(120_000);

let h: Harness;
let worker: WorkerProcess;

beforeAll(async () => {
  h = new Harness({ RELU_LSTM_BACKEND: 'cpu', RETENTION_SWEEP_MS: '300' });
  worker = await h.startReadyWorker();
});

afterAll(async () => {
  await h?.close();
});

const policy = (p: Partial<JobPolicy>): JobPolicy => ({ ...DEFAULT_JOB_POLICY, ...p });

const tinyTrain = contract.TrainPayload.parse({
  model: { inputSize: 1, hiddenSize: 4, outputSize: 1 },
  data: { synthetic: { kind: 'sine', samples: 16, seqLen: 4 } },
  training: { epochs: 2, batchSize: 8, learningRate: 0.01, seed: 1, checkpointEvery: 1 },
});

/** An inline model (hidden 4) and one sequence of 3 steps. */
const H = 4;
const tinyInfer = tinyInlineInfer(H);

/** Every record of ours a job can have, and whether each exists. */
async function records(id: string, tenant = 'default') {
  const [meta, events, cancel, checkpoint] = await Promise.all([
    h.redis.exists(h.keys.jobMeta(id)),
    h.redis.exists(h.keys.events(id)),
    h.redis.exists(h.keys.cancel(id)),
    h.redis.exists(h.keys.checkpoint(id)),
  ]);
  const indexed = (await h.redis.zscore(h.keys.jobIndex(tenant), id)) !== null;
  const artifacts = existsSync(path.join(h.artifactDir, id));
  return { meta, events, cancel, checkpoint, indexed, artifacts };
}

describe('retention', () => {
  it('lets the records and artifacts of completed and failed jobs expire with their keep-age', async () => {
    const p = policy({ keepCompletedSec: 3, keepFailedSec: 3 });
    const done = await h.submit('train', tinyTrain, { policy: p });
    // Fails at once (`not_found`): no model job of that id.
    const failed = await h.submit(
      'infer',
      { ...tinyInfer, model: undefined, modelJobId: '00000000-0000-4000-8000-000000000000' },
      { policy: p },
    );
    const endDone = await h.waitForEnd(done, 60_000, worker);
    const endFailed = await h.waitForEnd(failed, 60_000, worker);
    expect(endDone[endDone.length - 1]).toMatchObject({ state: 'completed' });
    expect(endFailed[endFailed.length - 1]).toMatchObject({ state: 'failed' });
    // A cancel flag set (by a late DELETE) after the job ended goes with the rest.
    await h.redis.set(h.keys.cancel(done), JSON.stringify({ requestedAt: Date.now() }));

    // Right after the end: everything is there, with a TTL of at most the keep-age.
    expect(await records(done)).toMatchObject({ meta: 1, events: 1, indexed: true, artifacts: true });
    expect(await records(failed)).toMatchObject({ meta: 1, events: 1, indexed: true });
    for (const id of [done, failed]) {
      for (const key of [h.keys.jobMeta(id), h.keys.events(id)]) {
        const ttl = await h.redis.pttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(3000);
      }
    }
    expect(await Job.fromId(h.queue('any'), done)).toBeDefined();

    const started = Date.now();
    const gone = { meta: 0, events: 0, cancel: 0, checkpoint: 0, indexed: false, artifacts: false };
    await waitFor(
      async () =>
        JSON.stringify(await records(done)) === JSON.stringify(gone) &&
        JSON.stringify(await records(failed)) === JSON.stringify(gone),
      20_000,
      () => `records still there: ${worker.output().slice(-2000)}`,
    );
    const tookMs = Date.now() - started;
    console.log(`age retention: keep 3 s; records, index entries and artifacts gone ${tookMs} ms after the jobs ended`);
    // BullMQ's own record goes with them (its age trim alone is lazy: it runs when a later job ends).
    await waitFor(
      async () =>
        (await Job.fromId(h.queue('any'), done)) === undefined &&
        (await Job.fromId(h.queue('any'), failed)) === undefined,
      10_000,
      () => 'BullMQ records still there',
    );
  });

  it('keeps the records of only the newest N finished jobs (count-based trim)', async () => {
    const keep = 3;
    const p = policy({ keepCompletedCount: keep, keepCompletedSec: 3600 });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push(await h.submit('infer', tinyInfer, { policy: p }));
    for (const id of ids) await h.waitForEnd(id, 60_000, worker);
    const newest = ids.slice(-keep);
    // BullMQ trims its completed set to `keep`; the sweeper removes our records of the others.
    await waitFor(
      async () => {
        const indexed = await h.redis.zrange(h.keys.jobIndex('default'), '0', '-1');
        return indexed.filter((id) => ids.includes(id)).length === keep;
      },
      20_000,
      () => `index not trimmed: ${worker.output().slice(-2000)}`,
    );
    const indexed = (await h.redis.zrange(h.keys.jobIndex('default'), '0', '-1')).filter((id) => ids.includes(id));
    expect(indexed.sort()).toEqual([...newest].sort());
    for (const id of ids) {
      const r = await records(id);
      const kept = newest.includes(id);
      expect({ id, meta: r.meta, events: r.events }).toEqual({ id, meta: kept ? 1 : 0, events: kept ? 1 : 0 });
    }
    const completed = await h.queue('any').getJobs(['completed']);
    expect(
      completed
        .map((j) => j.id)
        .filter((id) => ids.includes(id!))
        .sort(),
    ).toEqual([...newest].sort());
    console.log(
      `count retention: keep ${keep} of ${ids.length} jobs; index, metas and streams hold exactly the newest ${keep}`,
    );
  });
});
