/**
 * Retention of a job's own records, so that they follow BullMQ's `removeOnComplete` /
 * `removeOnFail` (by age and by count) instead of piling up in Redis and on disk:
 *
 *   - when a job ends, `expireJobRecords` gives its meta, event stream, cancel flag, checkpoint
 *     pointer and published-set record the keep-age of that outcome (`EXPIRE`, exact to the
 *     second, where BullMQ's own age trim is lazy: it runs when a later job finishes);
 *   - a periodic `sweepRetention` (one runner at a time, `tryLock`) removes what is left of jobs
 *     whose meta is gone (tenant index entry, stray keys, the job's artifacts, BullMQ's record)
 *     and the records of finished jobs BullMQ has trimmed by count, then the search index entries
 *     (job-index.ts) of every job whose meta is gone;
 *   - with `datasets` given (DATASET_KEEP_UNUSED_SEC > 0), the same pass removes the datasets no
 *     job has named for that long (upload or submission: `keys.datasetUse()`) and no live job names.
 *
 * Idempotency keys carry their own TTL (24 h) and are not touched here.
 */
import type { Redis } from 'ioredis';
import type { ArtifactStore, StoredJob } from './artifacts';
import { removeDatasetRecords } from './dataset-records';
import type { DatasetStore } from './datasets';
import { DatasetMetaSchema } from './events';
import { SAFE_ID, type RedisKeys } from './keys';
import { QUEUE_NAMES, type QueueName } from './queues';

/** BullMQ's `removeOnComplete` / `removeOnFail` option (`boolean | number | KeepJobs`). */
export type KeepOption = boolean | number | { age?: number; count?: number; limit?: number } | undefined;

/**
 * Seconds a finished job's records are kept under BullMQ's keep option: its `age`; 0 when BullMQ
 * removes the job at once (`true`, or a count of 0); null when only a count (or nothing) bounds it.
 */
export function keepAgeSec(keep: KeepOption): number | null {
  if (keep === true) return 0;
  if (typeof keep === 'number') return keep <= 0 ? 0 : null;
  if (keep && typeof keep === 'object') {
    if (typeof keep.age === 'number' && Number.isFinite(keep.age)) return Math.max(0, keep.age);
    if (keep.count === 0) return 0;
  }
  return null;
}

/** Every per-job key of ours (the tenant index entry and the artifacts are the sweeper's). */
export function jobRecordKeys(keys: RedisKeys, jobId: string): string[] {
  return [keys.jobMeta(jobId), keys.events(jobId), keys.cancel(jobId), keys.checkpoint(jobId), keys.published(jobId)];
}

/**
 * Lets a finished job's records expire after `ageSec` (at least 1 s, so a reader that was told
 * "completed" can still read the result). Keys that do not exist are skipped by Redis.
 */
export async function expireJobRecords(redis: Redis, keys: RedisKeys, jobId: string, ageSec: number): Promise<void> {
  const ttl = Math.max(1, Math.ceil(ageSec));
  const m = redis.multi();
  for (const k of jobRecordKeys(keys, jobId)) m.expire(k, ttl);
  await m.exec();
}

/** BullMQ's hash of a job: `<prefix>:<queue>:<id>`. */
export function bullJobKey(prefix: string, queue: string, jobId: string): string {
  return `${prefix}:${queue}:${jobId}`;
}

/** Takes the sweeper's lock for `ttlMs` if nobody holds it. */
export async function tryLock(redis: Redis, key: string, owner: string, ttlMs: number): Promise<boolean> {
  return (await redis.set(key, owner, 'PX', Math.max(1, Math.round(ttlMs)), 'NX')) === 'OK';
}

export interface RetentionSweepDeps {
  redis: Redis;
  keys: RedisKeys;
  /** Removes BullMQ's record of a job from a queue (e.g. `Queue.remove`); ignores one that is gone. */
  removeQueueJob(queue: QueueName, jobId: string): Promise<void>;
  /** Where the jobs' artifacts are: listed for orphans, and a dead job's removed whole. */
  artifacts: Pick<ArtifactStore, 'jobs' | 'remove'>;
  /** A job's artifacts without a meta are removed only when they have not changed for this long. */
  orphanGraceMs: number;
  /** Datasets unused for `keepUnusedMs` are removed from the Redis records and from `store`; absent: kept. */
  datasets?: { store: Pick<DatasetStore, 'remove'>; keepUnusedMs: number };
  now?: () => number;
  /** Index entries read per round trip. Default 500. */
  batch?: number;
}

export interface RetentionSweepReport {
  /** Tenant index entries looked at. */
  scanned: number;
  /** Jobs whose meta had expired (or vanished): index entry, keys, BullMQ record, artifacts removed. */
  expired: number;
  /** Finished jobs BullMQ had trimmed (by count): their records and artifacts removed. */
  trimmed: number;
  /** Per-job keys left without a meta (e.g. a cancel flag set after the job ended), removed. */
  strayKeys: number;
  /** Jobs' artifacts without a meta, removed. */
  orphanArtifacts: number;
  /** Datasets unused past DATASET_KEEP_UNUSED_SEC, removed. */
  unusedDatasets: number;
  /** Search index entries (type, name, tag sets) of jobs without a meta, removed. */
  filterEntries: number;
}

const PER_JOB_KEY = /^(.*):job:([A-Za-z0-9][A-Za-z0-9._-]{0,127}):(events|cancel|checkpoint|published)$/;

async function scanKeys(redis: Redis, match: string, each: (keys: string[]) => Promise<void>): Promise<void> {
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', match, 'COUNT', 1000);
    cursor = next;
    if (found.length) await each(found);
  } while (cursor !== '0');
}

/** What one pass carries from step to step: its deps (defaults filled in), the report it fills and
 * the jobs it has removed already (so step 3 does not remove their artifacts twice). */
interface Sweep {
  deps: RetentionSweepDeps;
  now: () => number;
  batch: number;
  report: RetentionSweepReport;
  removed: Set<string>;
}

/** A job to remove and the queues that still hold BullMQ's record of it. */
interface DeadJob {
  id: string;
  queues: QueueName[];
}

/** One pass of the retention sweeper; see the module comment. Safe to run while jobs run. */
export async function sweepRetention(deps: RetentionSweepDeps): Promise<RetentionSweepReport> {
  const sweep: Sweep = {
    deps,
    now: deps.now ?? Date.now,
    batch: deps.batch ?? 500,
    report: {
      scanned: 0,
      expired: 0,
      trimmed: 0,
      strayKeys: 0,
      orphanArtifacts: 0,
      unusedDatasets: 0,
      filterEntries: 0,
    },
    removed: new Set<string>(),
  };
  await sweepTenantIndexes(sweep);
  await sweepFilterIndexes(sweep);
  await sweepStrayKeys(sweep);
  await sweepOrphanArtifacts(sweep);
  if (deps.datasets && deps.datasets.keepUnusedMs > 0) await sweepUnusedDatasets(sweep, deps.datasets);
  return sweep.report;
}

/** Step 1. Tenant indexes: entries whose meta expired, and finished jobs BullMQ no longer has. */
async function sweepTenantIndexes(sweep: Sweep): Promise<void> {
  const { redis, keys } = sweep.deps;
  const indexes: string[] = [];
  await scanKeys(redis, `${keys.prefix}:jobs:*`, (found) => {
    indexes.push(...found);
    return Promise.resolve();
  });
  for (const indexKey of indexes) await sweepIndex(sweep, indexKey);
}

/** Pages through one tenant index; the offset skips only the entries that stay. */
async function sweepIndex(sweep: Sweep, indexKey: string): Promise<void> {
  const { redis } = sweep.deps;
  let offset = 0;
  for (;;) {
    const ids = await redis.zrange(indexKey, String(offset), String(offset + sweep.batch - 1));
    if (ids.length === 0) break;
    sweep.report.scanned += ids.length;
    const unsafe = ids.filter((id) => !SAFE_ID.test(id));
    const dead = await deadJobs(
      sweep,
      ids.filter((id) => SAFE_ID.test(id)),
    );
    if (unsafe.length || dead.length) await removeJobs(sweep, { indexKey, unsafe, dead });
    offset += ids.length - unsafe.length - dead.length;
  }
}

/** The jobs among `ids` whose meta expired, or that finished and BullMQ has trimmed; counted in the report. */
async function deadJobs(sweep: Sweep, ids: string[]): Promise<DeadJob[]> {
  if (!ids.length) return [];
  const { redis, keys } = sweep.deps;
  // PTTL of the meta says all the sweep needs of it: -2 gone, -1 not finished, > 0 finished.
  const p = redis.pipeline();
  for (const id of ids) {
    p.pttl(keys.jobMeta(id)).exists(keys.cancel(id));
    for (const q of QUEUE_NAMES) p.exists(bullJobKey(keys.prefix, q, id));
  }
  const res = (await p.exec()) ?? [];
  const dead: DeadJob[] = [];
  const per = 2 + QUEUE_NAMES.length;
  ids.forEach((id, n) => {
    const [pttl, cancel, ...inQueues] = res.slice(n * per, (n + 1) * per).map(([, v]) => v as number);
    const queued = QUEUE_NAMES.filter((_, i) => inQueues[i] === 1);
    if (pttl === -2) {
      dead.push({ id, queues: queued });
      sweep.report.expired++;
      return;
    }
    // Finished (the worker set its TTL) and trimmed by BullMQ. A cancel flag means it may have
    // been cancelled before it started (no BullMQ record ever after): left to its TTL.
    if (pttl > 0 && cancel === 0 && queued.length === 0) {
      dead.push({ id, queues: [] });
      sweep.report.trimmed++;
    }
  });
  return dead;
}

/**
 * Removes one index batch's dead entries: their index entries and per-job keys in one MULTI, then
 * their BullMQ records and artifacts (all of the batch at once, not one job after another).
 */
async function removeJobs(sweep: Sweep, o: { indexKey: string; unsafe: string[]; dead: DeadJob[] }): Promise<void> {
  const { redis, keys } = sweep.deps;
  const { dead } = o;
  const m = redis.multi().zrem(o.indexKey, ...o.unsafe, ...dead.map((d) => d.id));
  const recordKeys = dead.flatMap((d) => jobRecordKeys(keys, d.id));
  if (recordKeys.length) m.del(...recordKeys);
  await m.exec();
  await Promise.all(dead.flatMap((d) => d.queues.map((q) => sweep.deps.removeQueueJob(q, d.id))));
  await Promise.all(dead.map((d) => sweep.deps.artifacts.remove(d.id)));
  for (const d of dead) sweep.removed.add(d.id);
}

/**
 * Step 1b. The search indexes' entries of jobs whose meta is gone (those step 1 removed, and any
 * left by a submission that failed half-way): the sets hold ids only, so each is checked against the
 * metas. An emptied set is gone with its last member (Redis deletes empty sorted sets).
 */
async function sweepFilterIndexes(sweep: Sweep): Promise<void> {
  const { redis, keys } = sweep.deps;
  const sets: string[] = [];
  await scanKeys(redis, `${keys.prefix}:jobix:*`, (found) => {
    sets.push(...found);
    return Promise.resolve();
  });
  for (const key of sets) {
    for (let offset = 0; ;) {
      const ids = await redis.zrange(key, String(offset), String(offset + sweep.batch - 1));
      if (ids.length === 0) break;
      const safe = ids.filter((id) => SAFE_ID.test(id));
      const p = redis.pipeline();
      for (const id of safe) p.exists(keys.jobMeta(id));
      const res = (await p.exec()) ?? [];
      const live = new Set(safe.filter((_, i) => res[i]?.[1] === 1));
      const gone = ids.filter((id) => !live.has(id));
      if (gone.length) sweep.report.filterEntries += await redis.zrem(key, ...gone);
      offset += ids.length - gone.length;
    }
  }
}

/** Step 2. Per-job keys whose meta is gone (written after the job's records expired). */
async function sweepStrayKeys(sweep: Sweep): Promise<void> {
  const { redis, keys } = sweep.deps;
  await scanKeys(redis, `${keys.prefix}:job:*`, async (found) => {
    const stray = found
      .map((k) => PER_JOB_KEY.exec(k))
      .filter((m): m is RegExpExecArray => m !== null && m[1] === keys.prefix);
    if (!stray.length) return;
    const p = redis.pipeline();
    for (const m of stray) p.exists(keys.jobMeta(m[2]));
    const res = (await p.exec()) ?? [];
    const dead = stray.filter((_, i) => res[i]?.[1] === 0).map((m) => m[0]);
    if (dead.length) sweep.report.strayKeys += await redis.del(...dead);
  });
}

/**
 * Step 3. Artifacts of jobs without meta (expired, trimmed, or never recorded), once past the grace
 * time; a registered model version's files (`keys.modelBlobs()`) stay, and those of a registration
 * that did not complete go like any orphan.
 */
async function sweepOrphanArtifacts(sweep: Sweep): Promise<void> {
  const { redis, keys, artifacts, orphanGraceMs } = sweep.deps;
  for await (const chunk of inChunks(artifacts.jobs(), sweep.batch)) {
    const orphans = chunk.filter((d) => !sweep.removed.has(d.jobId) && sweep.now() - d.modifiedAt >= orphanGraceMs);
    if (!orphans.length) continue;
    // A registered model version's files (models.ts) have no job meta and are kept.
    const p = redis.pipeline();
    for (const d of orphans) p.exists(keys.jobMeta(d.jobId)).sismember(keys.modelBlobs(), d.jobId);
    const res = (await p.exec()) ?? [];
    for (let j = 0; j < orphans.length; j++) {
      if (res[2 * j]?.[1] === 0 && res[2 * j + 1]?.[1] === 0) {
        await artifacts.remove(orphans[j].jobId);
        sweep.report.orphanArtifacts++;
      }
    }
  }
}

/** A job id in a dataset's set with no meta yet is taken for a submission in flight for this long. */
const SUBMIT_IN_FLIGHT_MS = 60_000;

/**
 * Step 4. Datasets last used before the keep time: removed unless a job that names them may still
 * run (its meta without a TTL: the worker sets one when a job ends), which counts as a use now.
 */
async function sweepUnusedDatasets(sweep: Sweep, d: NonNullable<RetentionSweepDeps['datasets']>): Promise<void> {
  const { redis, keys } = sweep.deps;
  const cutoff = sweep.now() - d.keepUnusedMs;
  const ids = await redis.zrangebyscore(keys.datasetUse(), '-inf', cutoff, 'LIMIT', 0, sweep.batch);
  for (const id of ids) {
    if (!SAFE_ID.test(id)) {
      await redis.zrem(keys.datasetUse(), id);
      continue;
    }
    if (await datasetInUse(sweep, id)) {
      await redis.zadd(keys.datasetUse(), sweep.now(), id);
      continue;
    }
    const raw = await redis.get(keys.dataset(id));
    const meta = raw ? DatasetMetaSchema.safeParse(JSON.parse(raw)) : null;
    if (!meta?.success) {
      await redis.zrem(keys.datasetUse(), id);
      continue;
    }
    if (await removeDatasetRecords(redis, keys, meta.data)) {
      await d.store.remove(id);
      sweep.report.unusedDatasets++;
    }
  }
}

/** Whether a job naming the dataset may still run; the entries of jobs that ended leave its set. */
async function datasetInUse(sweep: Sweep, id: string): Promise<boolean> {
  const { redis, keys } = sweep.deps;
  const raw = await redis.zrangebyscore(keys.datasetJobs(id), '-inf', '+inf', 'WITHSCORES');
  if (raw.length === 0) return false;
  const p = redis.pipeline();
  for (let i = 0; i < raw.length; i += 2) p.pttl(keys.jobMeta(raw[i]));
  const ttls = ((await p.exec()) ?? []).map(([, v]) => v as number);
  const ended: string[] = [];
  let live = false;
  for (let i = 0; i < raw.length; i += 2) {
    const pttl = ttls[i / 2];
    const inFlight = pttl === -2 && Number(raw[i + 1]) > sweep.now() - SUBMIT_IN_FLIGHT_MS;
    if (pttl === -1 || inFlight) live = true;
    else ended.push(raw[i]);
  }
  if (ended.length) await redis.zrem(keys.datasetJobs(id), ...ended);
  return live;
}

async function* inChunks(jobs: AsyncIterable<StoredJob>, size: number): AsyncIterable<StoredJob[]> {
  let chunk: StoredJob[] = [];
  for await (const job of jobs) {
    chunk.push(job);
    if (chunk.length >= size) {
      yield chunk;
      chunk = [];
    }
  }
  if (chunk.length) yield chunk;
}
