// Retention helpers: keep options, planJob's options, and one sweep against the real Redis
// (REDIS_URL or 127.0.0.1:6379, unique prefix) and a file artifact store in a temporary directory.
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  DEFAULT_JOB_POLICY,
  bullJobKey,
  contract,
  expireJobRecords,
  keepAgeSec,
  newModelStorageId,
  ModelRegistryRecords,
  planJob,
  produceJob,
  redisKeys,
  sweepRetention,
  NO_PUBLISHED_SETS,
  openArtifactStore,
  openDatasetStore,
  tryLock,
  type ArtifactStore,
  type DatasetMeta,
  type QueueName,
} from '@relu-lstm/jobs';

const prefix = `test-ret-${randomUUID()}`;
const keys = redisKeys(prefix);
let redis: Redis;
let dir: string;
let artifacts: ArtifactStore;

beforeAll(async () => {
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  dir = await mkdtemp(join(tmpdir(), 'retention-'));
  artifacts = openArtifactStore(dir, { published: NO_PUBLISHED_SETS });
});
afterAll(async () => {
  const found = await redis.keys(`${prefix}:*`);
  if (found.length) await redis.del(...found);
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
});

/** Stores one artifact for each job, last changed at `modifiedAt`. */
async function storeArtifacts(ids: string[], modifiedAt: number): Promise<void> {
  for (const id of ids) {
    await artifacts.put(id, 'model.safetensors', 'x');
    await utimes(join(dir, id), modifiedAt / 1000, modifiedAt / 1000);
  }
}

async function stored(ids: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const id of ids) if ((await artifacts.list(id)).length) out.push(id);
  return out.sort();
}

test('keepAgeSec reads BullMQ keep options', () => {
  expect(keepAgeSec({ age: 30, count: 5 })).toBe(30);
  expect(keepAgeSec({ count: 5 } as never)).toBeNull();
  expect(keepAgeSec({ count: 0 } as never)).toBe(0);
  expect(keepAgeSec(true)).toBe(0);
  expect(keepAgeSec(false)).toBeNull();
  expect(keepAgeSec(undefined)).toBeNull();
  expect(keepAgeSec(100)).toBeNull();
  expect(keepAgeSec(0)).toBe(0);
});

test('planJob trims failed jobs by age and count', () => {
  const job = planJob('train', contract.TrainPayload.parse(CANONICAL_TRAIN_EXAMPLE), {
    limits: contract.limits,
    policy: { ...DEFAULT_JOB_POLICY, keepFailedSec: 60, keepFailedCount: 7 },
  });
  expect(job.opts.removeOnFail).toEqual({ age: 60, count: 7 });
  expect(job.opts.removeOnComplete).toEqual({
    age: DEFAULT_JOB_POLICY.keepCompletedSec,
    count: DEFAULT_JOB_POLICY.keepCompletedCount,
  });
});

test('expireJobRecords gives every per-job key the keep-age, at least 1 s', async () => {
  const id = randomUUID();
  for (const k of [keys.jobMeta(id), keys.events(id), keys.cancel(id), keys.checkpoint(id), keys.published(id)])
    await redis.set(k, 'x');
  await expireJobRecords(redis, keys, id, 30);
  for (const k of [keys.jobMeta(id), keys.events(id), keys.cancel(id), keys.checkpoint(id), keys.published(id)]) {
    const ttl = await redis.ttl(k);
    expect(ttl).toBeGreaterThan(25);
    expect(ttl).toBeLessThanOrEqual(30);
  }
  await expireJobRecords(redis, keys, id, 0);
  expect(await redis.pttl(keys.jobMeta(id))).toBeLessThanOrEqual(1000);
});

test('tryLock lets one owner in per period', async () => {
  expect(await tryLock(redis, keys.retentionLock(), 'a', 5000)).toBe(true);
  expect(await tryLock(redis, keys.retentionLock(), 'b', 5000)).toBe(false);
  await redis.del(keys.retentionLock());
});

test('one sweep: expired, trimmed, cancelled-before-start, running, stray keys and orphan directories', async () => {
  const meta = (id: string) =>
    JSON.stringify({ id, type: 'infer', queue: 'any', device: 'any', tenant: 't', createdAt: 1 });
  const index = keys.jobIndex('t');
  const [expired, trimmed, cancelledQueued, running, kept, strayOwner, orphanDir] = Array.from({ length: 7 }, () =>
    randomUUID(),
  );
  // expired: meta gone, stream and BullMQ record still there.
  await redis.zadd(index, 1, expired);
  await redis.set(keys.events(expired), 'x');
  await redis.hset(bullJobKey(prefix, 'any', expired), 'name', 'infer');
  // trimmed: finished (TTL), BullMQ record gone.
  await redis.zadd(index, 2, trimmed);
  await redis.set(keys.jobMeta(trimmed), meta(trimmed), 'EX', 3600);
  await redis.set(keys.events(trimmed), 'x', 'EX', 3600);
  await redis.set(keys.published(trimmed), 'x', 'PX', 3_600_000);
  // cancelled before it started: finished (TTL), no BullMQ record, but a cancel flag: left to its TTL.
  await redis.zadd(index, 3, cancelledQueued);
  await redis.set(keys.jobMeta(cancelledQueued), meta(cancelledQueued), 'EX', 3600);
  await redis.set(keys.cancel(cancelledQueued), 'x', 'EX', 3600);
  // running: no TTL (not finished), in BullMQ.
  await redis.zadd(index, 4, running);
  await redis.set(keys.jobMeta(running), meta(running));
  await redis.hset(bullJobKey(prefix, 'any', running), 'name', 'infer');
  // kept: finished, still in BullMQ.
  await redis.zadd(index, 5, kept);
  await redis.set(keys.jobMeta(kept), meta(kept), 'EX', 3600);
  await redis.hset(bullJobKey(prefix, 'any', kept), 'name', 'infer');
  // a cancel flag whose job is gone entirely
  await redis.set(keys.cancel(strayOwner), 'x');

  const recent = randomUUID(); // too recent to remove
  await storeArtifacts([expired, trimmed, running, kept, orphanDir], 0);
  await storeArtifacts([recent], Date.now());
  const removedQueueJobs: Array<[QueueName, string]> = [];
  const report = await sweepRetention({
    redis,
    keys,
    removeQueueJob: async (q, id) => {
      removedQueueJobs.push([q, id]);
      await redis.del(bullJobKey(prefix, q, id));
    },
    artifacts,
    orphanGraceMs: 60_000,
    batch: 2,
  });
  expect(report).toEqual({
    scanned: 5,
    expired: 1,
    trimmed: 1,
    strayKeys: 1,
    orphanArtifacts: 1,
    unusedDatasets: 0,
    filterEntries: 0,
  });
  expect((await redis.zrange(index, '0', '-1')).sort()).toEqual([cancelledQueued, running, kept].sort());
  expect(
    await redis.exists(
      keys.events(expired),
      keys.jobMeta(trimmed),
      keys.events(trimmed),
      keys.published(trimmed),
      keys.cancel(strayOwner),
    ),
  ).toBe(0);
  expect(removedQueueJobs).toEqual([['any', expired]]);
  expect(await stored([expired, trimmed, running, kept, orphanDir, recent])).toEqual([running, kept, recent].sort());
  expect(await redis.exists(keys.jobMeta(running), keys.jobMeta(kept), keys.jobMeta(cancelledQueued))).toBe(3);
});

test("a registered model version's files stay; those of a registration that never completed go", async () => {
  const registered = newModelStorageId();
  const abandoned = newModelStorageId();
  const records = new ModelRegistryRecords(redis, keys);
  const record = {
    storageId: registered,
    jobId: randomUUID(),
    createdAt: 1,
    model: { ...contract.ModelSpec.parse(CANONICAL_TRAIN_EXAMPLE.model) },
    files: [{ name: 'model.safetensors', size: 1 }],
  };
  expect(await records.register({ tenant: 'm', name: 'kept', record, maxVersions: 0 })).toEqual({
    ok: true,
    version: 1,
  });
  await storeArtifacts([registered, abandoned], 0);
  const sweep = () =>
    sweepRetention({ redis, keys, removeQueueJob: () => Promise.resolve(), artifacts, orphanGraceMs: 60_000 });
  expect((await sweep()).orphanArtifacts).toBe(1);
  expect(await stored([registered, abandoned])).toEqual([registered]);
  // Deleted, the version's files are an orphan like any other.
  expect(await records.deleteVersion('m', 'kept', 1)).toEqual({ ok: true });
  expect((await sweep()).orphanArtifacts).toBe(1);
  expect(await stored([registered])).toEqual([]);
});

test('a sweep drops index entries that are not job ids along with dead jobs of the same batch', async () => {
  const index = keys.jobIndex('u');
  const [dead, alive] = [randomUUID(), randomUUID()];
  await redis.zadd(index, 1, 'not a job id', 2, dead, 3, alive);
  await redis.set(
    keys.jobMeta(alive),
    JSON.stringify({ id: alive, type: 'infer', queue: 'any', device: 'any', tenant: 'u', createdAt: 3 }),
  );
  await redis.set(keys.events(dead), 'x');
  await storeArtifacts([dead, alive], Date.now());
  const report = await sweepRetention({
    redis,
    keys,
    removeQueueJob: () => Promise.resolve(),
    artifacts,
    orphanGraceMs: 60_000,
  });
  expect(report.expired).toBe(1);
  expect(await redis.zrange(index, '0', '-1')).toEqual([alive]);
  expect(await redis.exists(keys.events(dead))).toBe(0);
  expect(await stored([dead, alive])).toEqual([alive]);
});

test('datasets unused past the keep time go, unless a job that may still run names them; keep 0 keeps all', async () => {
  const datasets = openDatasetStore(join(dir, 'datasets'));
  const now = Date.now();
  const day = 86_400_000;
  const tenant = 'acme';
  /** A dataset as the api records it: arrays, meta, tenant index and bytes, last use. */
  async function upload(lastUse: number): Promise<string> {
    const id = randomUUID();
    const { bytes } = await datasets.put(id, { x: [[[1], [2]]], y: [[1]] });
    const meta: DatasetMeta = {
      id,
      tenant,
      samples: 1,
      seqLen: 2,
      inputSize: 1,
      targetShape: [1, 1],
      hasLengths: false,
      format: 'json',
      bytes,
      createdAt: lastUse,
    };
    await redis
      .multi()
      .set(keys.dataset(id), JSON.stringify(meta))
      .zadd(keys.datasetIndex(tenant), lastUse, id)
      .incrby(keys.datasetBytes(tenant), bytes)
      .zadd(keys.datasetUse(), lastUse, id)
      .exec();
    return id;
  }
  const unused = await upload(now - 3 * day);
  const recent = await upload(now - day / 2);
  const usedByLive = await upload(now - 3 * day);
  const usedByEnded = await upload(now - 3 * day);
  // A queued job (meta without TTL) names usedByLive; a finished one (meta with its TTL) usedByEnded.
  const [live, ended] = [randomUUID(), randomUUID()];
  await redis.set(keys.jobMeta(live), '{}');
  await redis.set(keys.jobMeta(ended), '{}', 'EX', 3600);
  await redis.zadd(keys.datasetJobs(usedByLive), now - 3 * day, live);
  await redis.zadd(keys.datasetJobs(usedByEnded), now - 3 * day, ended);
  const bytesBefore = Number(await redis.get(keys.datasetBytes(tenant)));
  const sweep = (keepUnusedMs: number) =>
    sweepRetention({
      redis,
      keys,
      removeQueueJob: () => Promise.resolve(),
      artifacts,
      orphanGraceMs: day,
      datasets: { store: datasets, keepUnusedMs },
    });

  expect((await sweep(0)).unusedDatasets).toBe(0);
  const report = await sweep(day);
  expect(report.unusedDatasets).toBe(2);
  const all = [unused, recent, usedByLive, usedByEnded];
  const exists = await Promise.all(all.map((id) => datasets.exists(id)));
  expect(exists).toEqual([false, true, true, false]);
  expect((await redis.zrange(keys.datasetIndex(tenant), '0', '-1')).sort()).toEqual([recent, usedByLive].sort());
  expect(await redis.exists(keys.dataset(unused), keys.dataset(usedByEnded), keys.datasetJobs(usedByEnded))).toBe(0);
  // Four sets of equal size, two removed: half the bytes stay counted against the tenant's quota.
  expect(Number(await redis.get(keys.datasetBytes(tenant)))).toBe(bytesBefore / 2);
  // The live job's dataset counts as used now: not looked at again for another keep time.
  expect(Number(await redis.zscore(keys.datasetUse(), usedByLive))).toBeGreaterThanOrEqual(now);
  expect(await redis.zrange(keys.datasetJobs(usedByLive), '0', '-1')).toEqual([live]);
});

test("a sweep removes a removed job's search index entries (type, name, tags) and keeps the others'", async () => {
  const queue = { add: () => Promise.resolve() };
  const deps = { redis, keys, queue: () => queue };
  const payload = contract.TrainPayload.parse(CANONICAL_TRAIN_EXAMPLE);
  const job = { name: 'nightly', tags: { team: 'ml' }, priority: 5 };
  const plans = [0, 1].map(() => planJob('train', payload, { limits: contract.limits, tenant: 'idx', job }));
  for (const p of plans) await produceJob(deps, p);
  const sets = [
    keys.jobFilterIndex('idx', { type: 'train' }),
    keys.jobFilterIndex('idx', { name: 'nightly' }),
    keys.jobFilterIndex('idx', { tag: ['team', 'ml'] }),
  ];
  for (const k of sets) expect((await redis.zrange(k, '0', '-1')).sort()).toEqual(plans.map((p) => p.id).sort());
  await redis.del(keys.jobMeta(plans[0].id)); // its records expired
  const report = await sweepRetention({
    redis,
    keys,
    removeQueueJob: () => Promise.resolve(),
    artifacts,
    orphanGraceMs: 60_000,
  });
  expect(report.filterEntries).toBe(3);
  for (const k of sets) expect(await redis.zrange(k, '0', '-1')).toEqual([plans[1].id]);
  expect(await redis.zrange(keys.jobIndex('idx'), '0', '-1')).toEqual([plans[1].id]);
});
