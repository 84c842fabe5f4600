/**
 * Putting a planned job on its queue with the records every reader expects, in one place for every
 * producer (the api's submit routes and the client's QueueClient). (An addition by the client; the
 * api can adopt it: `produceJob(deps, planJob(type, payload, { tenant }))`.)
 *
 * In order:
 *   1. `SET <p>:job:<id> <JobMeta> NX`   an existing id fails with `JobIdConflictError`
 *   2. `ZADD <p>:jobs:<tenant> <createdAt> <id>` (listing) and the `queued` state event on the job's
 *      event stream, in one MULTI
 *   3. `queue.add(name, data, opts)` on the planned queue
 * Writing the records first means a worker that takes the job at once always finds its metadata and
 * appends `running` after `queued`. When step 3 fails the records are removed again and the error
 * is rethrown, so a failed submission leaves nothing behind.
 */
import type { Redis } from 'ioredis';
import { JobEventSchema, JobMetaSchema, type JobType } from './events';
import { DEFAULT_STREAM_MAXLEN } from './event-stream';
import type { RedisKeys } from './keys';
import type { JobData, PlannedJob, PlannedJobOptions, QueueName } from './queues';

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

export interface ProducedJob {
  id: string;
  type: JobType;
  queue: QueueName;
  state: 'queued';
  /** Entry id of the `queued` event in the job's stream. */
  eventId: string;
}

export async function produceJob<T extends JobType>(deps: ProducerDeps, plan: PlannedJob<T>): Promise<ProducedJob> {
  const { redis, keys } = deps;
  const meta = JSON.stringify(JobMetaSchema.parse(plan.meta));
  const queued = JSON.stringify(JobEventSchema.parse({ type: 'state', at: plan.meta.createdAt, state: 'queued' }));
  const metaKey = keys.jobMeta(plan.id);
  const indexKey = keys.jobIndex(plan.meta.tenant);
  const eventsKey = keys.events(plan.id);

  if ((await redis.set(metaKey, meta, 'NX')) !== 'OK') throw new JobIdConflictError(plan.id);
  try {
    const res = await redis
      .multi()
      .zadd(indexKey, plan.meta.createdAt, plan.id)
      .xadd(eventsKey, 'MAXLEN', '~', String(deps.streamMaxLen ?? DEFAULT_STREAM_MAXLEN), '*', 'event', queued)
      .exec();
    const failed = res?.find(([err]) => err);
    if (!res || failed) throw failed?.[0] ?? new Error('MULTI aborted');
    const eventId = res[1][1] as string;
    await deps.queue(plan.queue).add(plan.name, plan.data, plan.opts);
    return { id: plan.id, type: plan.name, queue: plan.queue, state: 'queued', eventId };
  } catch (e) {
    await redis
      .multi()
      .del(metaKey, eventsKey)
      .zrem(indexKey, plan.id)
      .exec()
      .catch(() => undefined); // the original error matters more
    throw e;
  }
}
