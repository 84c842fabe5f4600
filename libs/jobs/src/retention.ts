/**
 * Retention of a job's own records, so that they follow BullMQ's `removeOnComplete` /
 * `removeOnFail` (by age and by count) instead of piling up in Redis and on disk:
 *
 *   - when a job ends, `expireJobRecords` gives its meta, event stream, cancel flag, checkpoint
 *     pointer and published-set record the keep-age of that outcome (`EXPIRE`, exact to the
 *     second, where BullMQ's own age trim is lazy: it runs when a later job finishes);
 *   - a periodic `sweepRetention` (one runner at a time, `tryLock`) removes what is left of jobs
 *     whose meta is gone (tenant index entry, stray keys, the job's artifacts, BullMQ's record)
 *     and the records of finished jobs BullMQ has trimmed by count.
 *
 * Idempotency keys carry their own TTL (24 h) and are not touched here.
 */
import type { Redis } from 'ioredis';
import type { ArtifactStore, StoredJob } from './artifacts';
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

/** One pass of the retention sweeper; see the module comment. Safe to run while jobs run. */
export async function sweepRetention(deps: RetentionSweepDeps): Promise<RetentionSweepReport> {
  const { redis, keys } = deps;
  const now = deps.now ?? Date.now;
  const batch = deps.batch ?? 500;
  const report: RetentionSweepReport = { scanned: 0, expired: 0, trimmed: 0, strayKeys: 0, orphanArtifacts: 0 };
  const removed = new Set<string>();

  /**
   * Removes one index batch's dead entries: their index entries and per-job keys in one MULTI, then
   * their BullMQ records and artifacts (all of the batch at once, not one job after another).
   */
  const removeJobs = async (indexKey: string, unsafe: string[], dead: Array<{ id: string; queues: QueueName[] }>) => {
    const m = redis.multi().zrem(indexKey, ...unsafe, ...dead.map((d) => d.id));
    const recordKeys = dead.flatMap((d) => jobRecordKeys(keys, d.id));
    if (recordKeys.length) m.del(...recordKeys);
    await m.exec();
    await Promise.all(dead.flatMap((d) => d.queues.map((q) => deps.removeQueueJob(q, d.id))));
    await Promise.all(dead.map((d) => deps.artifacts.remove(d.id)));
    for (const d of dead) removed.add(d.id);
  };

  // 1. Tenant indexes: entries whose meta expired, and finished jobs BullMQ no longer has.
  const indexes: string[] = [];
  await scanKeys(redis, `${keys.prefix}:jobs:*`, (found) => {
    indexes.push(...found);
    return Promise.resolve();
  });
  for (const indexKey of indexes) {
    let offset = 0;
    for (;;) {
      const ids = await redis.zrange(indexKey, String(offset), String(offset + batch - 1));
      if (ids.length === 0) break;
      report.scanned += ids.length;
      const safe = ids.filter((id) => SAFE_ID.test(id));
      const unsafe = ids.filter((id) => !SAFE_ID.test(id));
      // PTTL of the meta says all the sweep needs of it: -2 gone, -1 not finished, > 0 finished.
      const p = redis.pipeline();
      for (const id of safe) {
        p.pttl(keys.jobMeta(id)).exists(keys.cancel(id));
        for (const q of QUEUE_NAMES) p.exists(bullJobKey(keys.prefix, q, id));
      }
      const res = safe.length ? ((await p.exec()) ?? []) : [];
      const dead: Array<{ id: string; queues: QueueName[] }> = [];
      const per = 2 + QUEUE_NAMES.length;
      safe.forEach((id, n) => {
        const [pttl, cancel, ...inQueues] = res.slice(n * per, (n + 1) * per).map(([, v]) => v as number);
        const queued = QUEUE_NAMES.filter((_, i) => inQueues[i] === 1);
        if (pttl === -2) {
          dead.push({ id, queues: queued });
          report.expired++;
          return;
        }
        // Finished (the worker set its TTL) and trimmed by BullMQ. A cancel flag means it may have
        // been cancelled before it started (no BullMQ record ever after): left to its TTL.
        if (pttl > 0 && cancel === 0 && queued.length === 0) {
          dead.push({ id, queues: [] });
          report.trimmed++;
        }
      });
      if (unsafe.length || dead.length) await removeJobs(indexKey, unsafe, dead);
      offset += ids.length - unsafe.length - dead.length;
    }
  }

  // 2. Per-job keys whose meta is gone (written after the job's records expired).
  await scanKeys(redis, `${keys.prefix}:job:*`, async (found) => {
    const stray = found
      .map((k) => PER_JOB_KEY.exec(k))
      .filter((m): m is RegExpExecArray => m !== null && m[1] === keys.prefix);
    if (!stray.length) return;
    const p = redis.pipeline();
    for (const m of stray) p.exists(keys.jobMeta(m[2]));
    const res = (await p.exec()) ?? [];
    const dead = stray.filter((_, i) => res[i]?.[1] === 0).map((m) => m[0]);
    if (dead.length) report.strayKeys += await redis.del(...dead);
  });

  // 3. Artifacts of jobs without meta (expired, trimmed, or never recorded).
  for await (const chunk of inChunks(deps.artifacts.jobs(), batch)) {
    const orphans = chunk.filter((d) => !removed.has(d.jobId) && now() - d.modifiedAt >= deps.orphanGraceMs);
    if (!orphans.length) continue;
    const p = redis.pipeline();
    for (const d of orphans) p.exists(keys.jobMeta(d.jobId));
    const res = (await p.exec()) ?? [];
    for (let j = 0; j < orphans.length; j++) {
      if (res[j]?.[1] === 0) {
        await deps.artifacts.remove(orphans[j].jobId);
        report.orphanArtifacts++;
      }
    }
  }
  return report;
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
