/**
 * Putting a planned job on its queue with the records every reader expects, in one place for every
 * producer (the api's submit routes and the client's QueueClient):
 * `produceJob(deps, planJob(type, payload, { tenant }))`.
 *
 * In order:
 *   1. `SET <p>:job:<id> <JobMeta> NX`, then `ZADD <p>:jobs:<tenant> <createdAt> <id>` (listing) and
 *      into its search indexes (job-index.ts), its fair-share turn (`FAIR_SHARE`, below) and the
 *      `queued` state event on the job's event stream, in one Lua script (one round trip, atomic);
 *      an existing id fails with `JobIdConflictError` and writes nothing. With a `quota` (the api's
 *      per-tenant live set), the same script first refuses with `LiveQuotaFullError`, writing
 *      nothing, when the set holds `max` ids, and otherwise adds the id to it: the place and the
 *      records are taken together, so no reader ever sees an id in the set without its meta.
 *   2. `queue.add(name, data, opts)` on the planned queue, with the BullMQ priority of its turn
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
import { jobFilterIndexesOf } from './job-index';
import type { JobData } from './job-types';
import { JOB_PRIORITY } from './limits';
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
  /** The BullMQ priority it was queued with (`FAIR_SHARE`). */
  bullPriority: number;
}

/**
 * The fairness rule between tenants (start-time fair queueing on BullMQ's priorities). Every job of
 * a queue gets a turn: a tenant's new job at priority p (1 highest .. 10 lowest) takes the queue's
 * current turn, or one after the last turn the same tenant was given at priority p or higher,
 * whichever is later. The queue's current turn is that of the next job waiting in it (the lowest
 * BullMQ priority), or, with none waiting, the highest turn given so far. The BullMQ priority is
 * `turn * levels + p`: lower turns run first, within a turn the higher priorities.
 *
 * So tenants take turns: a tenant's flood of 50 jobs takes turns t..t+49 and another tenant's job
 * submitted meanwhile takes turn t, and starts after at most one of the flood (none when it is of
 * a higher priority). Within a tenant a job never overtakes its own earlier jobs of the same or a
 * higher priority, and overtakes its earlier lower-priority ones. Priority never buys a tenant a
 * place before another tenant's turns. Turns are bounded by BullMQ's priority limit (2^21 - 1):
 * they saturate at `maxTurn` (then that queue is served by priority and FIFO), and start over when
 * the queue has no job waiting and half of them are used.
 */
export const FAIR_SHARE = Object.freeze({
  levels: JOB_PRIORITY.lowest,
  maxTurn: Math.floor((2 ** 21 - 1 - JOB_PRIORITY.lowest) / JOB_PRIORITY.lowest),
});

/** BullMQ's sorted set of a queue's waiting prioritized jobs, scored `priority * 2^32 + counter`. */
export const bullPrioritizedKey = (prefix: string, queue: string): string => `${prefix}:${queue}:prioritized`;

/**
 * KEYS: meta, events, fair-share hash, BullMQ prioritized set, the n index keys[, live set].
 * ARGV: meta JSON, createdAt, id, stream cap, queued-event JSON, n, tenant, priority[, most ids in
 * the live set]. Returns `{ queued event id, BullMQ priority }`; false when the meta key exists, 0
 * when the live set is full (nothing written either way).
 */
const RECORDS_SCRIPT = `local nix = tonumber(ARGV[6])
local quota = KEYS[5 + nix]
if quota and redis.call('SCARD', quota) >= tonumber(ARGV[9]) then return 0 end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return false end
if quota then redis.call('SADD', quota, ARGV[3]) end
for i = 5, 4 + nix do redis.call('ZADD', KEYS[i], ARGV[2], ARGV[3]) end
local levels, maxTurn, p = ${FAIR_SHARE.levels}, ${FAIR_SHARE.maxTurn}, tonumber(ARGV[8])
local head = redis.call('ZRANGE', KEYS[4], 0, 0, 'WITHSCORES')
local clock = tonumber(redis.call('HGET', KEYS[3], 'clock') or '0')
if not head[2] and clock > maxTurn / 2 then redis.call('DEL', KEYS[3]) clock = 0 end
local turn = clock
if head[2] then turn = math.floor((math.floor(tonumber(head[2]) / 4294967296) - 1) / levels) end
for q = 1, p do
  local last = tonumber(redis.call('HGET', KEYS[3], ARGV[7] .. '/' .. q) or '-1')
  if last + 1 > turn then turn = last + 1 end
end
if turn > maxTurn then turn = maxTurn end
redis.call('HSET', KEYS[3], ARGV[7] .. '/' .. p, turn)
if turn > clock then redis.call('HSET', KEYS[3], 'clock', turn) end
local eid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', 'event', ARGV[5])
return { eid, turn * levels + p }`;
const RECORDS_SHA = createHash('sha1').update(RECORDS_SCRIPT).digest('hex');

type RecordsReply = [string, number] | number | null;

/** EVALSHA of the records script, falling back to EVAL the first time a server has not seen it. */
async function writeRecords(redis: Redis, keys: string[], args: string[]): Promise<RecordsReply> {
  try {
    return (await redis.evalsha(RECORDS_SHA, keys.length, ...keys, ...args)) as RecordsReply;
  } catch (e) {
    if (!/NOSCRIPT/.test((e as Error).message)) throw e;
    return (await redis.eval(RECORDS_SCRIPT, keys.length, ...keys, ...args)) as RecordsReply;
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
): Promise<WrittenRecords> {
  const { redis, keys } = deps;
  const meta = JSON.stringify(JobMetaSchema.parse(plan.meta));
  const queued = JSON.stringify(JobEventSchema.parse({ type: 'state', at: plan.meta.createdAt, state: 'queued' }));
  const indexKeys = indexKeysOf(keys, plan);
  const fairKeys = [keys.fairShare(plan.queue), bullPrioritizedKey(keys.prefix, plan.queue)];
  const priority = plan.meta.priority ?? JOB_PRIORITY.default;
  const args = [meta, String(plan.meta.createdAt), plan.id, String(deps.streamMaxLen ?? DEFAULT_STREAM_MAXLEN), queued];
  args.push(String(indexKeys.length), plan.meta.tenant, String(priority));
  const reply = await writeRecords(
    redis,
    [keys.jobMeta(plan.id), keys.events(plan.id), ...fairKeys, ...indexKeys, ...(quota ? [quota.key] : [])],
    quota ? [...args, String(quota.max)] : args,
  );
  if (reply === 0) throw new LiveQuotaFullError(quota!.max);
  if (!Array.isArray(reply)) throw new JobIdConflictError(plan.id);
  const [eventId, bullPriority] = reply as [string, number];
  return { eventId, bullPriority };
}

/** What `writeJobRecords` wrote: the `queued` event's entry id and the job's BullMQ priority (fair share). */
export interface WrittenRecords {
  eventId: string;
  bullPriority: number;
}

/** The tenant's listing and the job's type, name and tag sets (job-index.ts). */
function indexKeysOf<T extends JobType>(keys: RedisKeys, plan: PlannedJob<T>): string[] {
  return [keys.jobIndex(plan.meta.tenant), ...jobFilterIndexesOf(keys, plan.meta)];
}

/** Undoes `writeJobRecords` (a submission that could not be queued); never throws. */
export async function removeJobRecords<T extends JobType>(
  deps: Pick<ProducerDeps, 'redis' | 'keys'>,
  plan: PlannedJob<T>,
  quota?: LiveQuota,
): Promise<void> {
  const { redis, keys } = deps;
  const undo = redis.multi().del(keys.jobMeta(plan.id), keys.events(plan.id));
  for (const k of indexKeysOf(keys, plan)) undo.zrem(k, plan.id);
  if (quota) undo.srem(quota.key, plan.id);
  await undo.exec().catch(() => undefined);
}

/** `quota`: take a place in this live set with the records, or fail with `LiveQuotaFullError`. */
export async function produceJob<T extends JobType>(
  deps: ProducerDeps,
  plan: PlannedJob<T>,
  quota?: LiveQuota,
): Promise<ProducedJob> {
  const { eventId, bullPriority } = await writeJobRecords(deps, plan, quota);
  try {
    await deps.queue(plan.queue).add(plan.name, plan.data, { ...plan.opts, priority: bullPriority });
    return { id: plan.id, type: plan.name, queue: plan.queue, state: 'queued', eventId, bullPriority };
  } catch (e) {
    await removeJobRecords(deps, plan, quota); // the original error matters more
    throw e;
  }
}
