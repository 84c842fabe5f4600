/**
 * Putting a planned job on its queue with the records every reader expects, in one place for every
 * producer (the api's submit routes and the client's QueueClient):
 * `produceJob(deps, planJob(type, payload, { tenant }))`.
 *
 * In order:
 *   1. `SET <p>:job:<id> <JobMeta> NX`, then `ZADD <p>:jobs:<tenant> <createdAt> <id>` (listing) and
 *      the `queued` state event on the job's event stream, in one Lua script (one round trip, atomic);
 *      an existing id fails with `JobIdConflictError` and writes nothing. With a `quota` (the api's
 *      per-tenant live set), the same script first refuses with `LiveQuotaFullError`, writing
 *      nothing, when the set holds `max` ids, and otherwise adds the id to it: the place and the
 *      records are taken together, so no reader ever sees an id in the set without its meta.
 *   2. `queue.add(name, data, opts)` on the planned queue
 * Writing the records first means a worker that takes the job at once always finds its metadata and
 * appends `running` after `queued`. When step 2 fails the records (and the place) are removed again
 * and the error is rethrown, so a failed submission leaves nothing behind.
 *
 * Step 1 was a SET NX and a MULTI, two round trips; one script halves the Redis writes of a
 * submission's records, which is what the api's submit route spends most of its time on under load
 * (bench/README.md, "Runner").
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { JobEventSchema, JobMetaSchema, type JobType } from './events';
import { DEFAULT_STREAM_MAXLEN } from './event-stream';
import type { RedisKeys } from './keys';
import type { JobData } from './job-types';
import type { PlannedJob, PlannedJobOptions, QueueName } from './queues';

/** The part of a BullMQ `Queue` a producer uses; a `Queue` satisfies it. */
export interface JobQueue {
  add(name: string, data: JobData, opts: PlannedJobOptions): Promise<unknown>;
}

export interface ProducerDeps {
  /** A connection for the records (not a blocking one). */
  redis: Redis;
  keys: RedisKeys;
  /** The BullMQ queue (same prefix as `keys`) of a queue name. */
  queue(name: QueueName): JobQueue;
  /** Cap of the event stream; default `DEFAULT_STREAM_MAXLEN`, as the worker's `RedisJobEventStream`. */
  streamMaxLen?: number;
}

export class JobIdConflictError extends Error {
  readonly code = 'conflict';
  constructor(readonly jobId: string) {
    super(`a job with id ${jobId} exists already`);
    this.name = 'JobIdConflictError';
  }
}

/** The live set is full: nothing was written. */
export class LiveQuotaFullError extends Error {
  readonly code = 'quota_exceeded';
  constructor(readonly max: number) {
    super(`the live set holds ${max} jobs already`);
    this.name = 'LiveQuotaFullError';
  }
}

/** A set of the ids of a tenant's live jobs and the most it may hold (see the api's jobs/quota.ts). */
export interface LiveQuota {
  key: string;
  max: number;
}

export interface ProducedJob {
  id: string;
  type: JobType;
  queue: QueueName;
  state: 'queued';
  /** Entry id of the `queued` event in the job's stream. */
  eventId: string;
}

/**
 * KEYS: meta, index, events[, live set]. ARGV: meta JSON, createdAt, id, stream cap, queued-event
 * JSON[, most ids in the live set]. Returns the `queued` event's entry id; false when the meta key
 * exists, 0 when the live set is full (nothing written either way).
 */
const RECORDS_SCRIPT = `if KEYS[4] and redis.call('SCARD', KEYS[4]) >= tonumber(ARGV[6]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return false end
if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[3]) end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[5])`;
const RECORDS_SHA = createHash('sha1').update(RECORDS_SCRIPT).digest('hex');

/** EVALSHA of the records script, falling back to EVAL the first time a server has not seen it. */
async function writeRecords(redis: Redis, keys: string[], args: string[]): Promise<string | number | null> {
  try {
    return (await redis.evalsha(RECORDS_SHA, keys.length, ...keys, ...args)) as string | number | null;
  } catch (e) {
    if (!/NOSCRIPT/.test((e as Error).message)) throw e;
    return (await redis.eval(RECORDS_SCRIPT, keys.length, ...keys, ...args)) as string | number | null;
  }
}

/**
 * Step 1 of the header: the job's records (and its place in `quota`), or `LiveQuotaFullError` /
 * `JobIdConflictError` with nothing written. Returns the `queued` event's entry id.
 */
export async function writeJobRecords<T extends JobType>(
  deps: Pick<ProducerDeps, 'redis' | 'keys' | 'streamMaxLen'>,
  plan: PlannedJob<T>,
  quota?: LiveQuota,
): Promise<string> {
  const { redis, keys } = deps;
  const meta = JSON.stringify(JobMetaSchema.parse(plan.meta));
  const queued = JSON.stringify(JobEventSchema.parse({ type: 'state', at: plan.meta.createdAt, state: 'queued' }));
  const recordKeys = [keys.jobMeta(plan.id), keys.jobIndex(plan.meta.tenant), keys.events(plan.id)];
  const args = [meta, String(plan.meta.createdAt), plan.id, String(deps.streamMaxLen ?? DEFAULT_STREAM_MAXLEN), queued];
  const eventId = await writeRecords(
    redis,
    quota ? [...recordKeys, quota.key] : recordKeys,
    quota ? [...args, String(quota.max)] : args,
  );
  if (eventId === 0) throw new LiveQuotaFullError(quota!.max);
  if (typeof eventId !== 'string') throw new JobIdConflictError(plan.id);
  return eventId;
}

/** Undoes `writeJobRecords` (a submission that could not be queued); never throws. */
export async function removeJobRecords<T extends JobType>(
  deps: Pick<ProducerDeps, 'redis' | 'keys'>,
  plan: PlannedJob<T>,
  quota?: LiveQuota,
): Promise<void> {
  const { redis, keys } = deps;
  const undo = redis
    .multi()
    .del(keys.jobMeta(plan.id), keys.events(plan.id))
    .zrem(keys.jobIndex(plan.meta.tenant), plan.id);
  if (quota) undo.srem(quota.key, plan.id);
  await undo.exec().catch(() => undefined);
}

/** `quota`: take a place in this live set with the records, or fail with `LiveQuotaFullError`. */
export async function produceJob<T extends JobType>(
  deps: ProducerDeps,
  plan: PlannedJob<T>,
  quota?: LiveQuota,
): Promise<ProducedJob> {
  const eventId = await writeJobRecords(deps, plan, quota);
  try {
    await deps.queue(plan.queue).add(plan.name, plan.data, plan.opts);
    return { id: plan.id, type: plan.name, queue: plan.queue, state: 'queued', eventId };
  } catch (e) {
    await removeJobRecords(deps, plan, quota); // the original error matters more
    throw e;
  }
}
