/**
 * The per-tenant quota of queued + running jobs (`MAX_QUEUED_JOBS_PER_TENANT`).
 *
 * Each tenant has a Redis set of the ids of its jobs that may still be live. A submission adds its
 * id with one atomic script that refuses when the set is full, so concurrent submissions (from any
 * number of api processes) can never overshoot. Jobs end in the worker, which knows nothing of the
 * set; instead of a counter that every ending must decrement (and that drifts when a worker dies at
 * the wrong moment), a full set is recounted from the jobs' real state (BullMQ, then the event
 * stream) before a submission is refused: ended jobs leave the set. The recount costs one view per
 * member, so it runs at most once a second per tenant; a freed place is seen within that second.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { isTerminal, type RedisKeys } from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { CONFIG, KEYS, REDIS } from '../infra/tokens';
import { JobRecords } from './job-records';

/** KEYS[1] the live set; ARGV max, id. 1: added (or already in), 0: full. */
const RESERVE = `
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SADD', KEYS[1], ARGV[2])
  return 1
end
return 0
`;

const RECOUNT_EVERY_MS = 1000;

type WithReserve = Redis & { reserveLiveJob(key: string, max: number, id: string): Promise<number> };

@Injectable()
export class JobQuota {
  private readonly redis: WithReserve;

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    private readonly records: JobRecords,
  ) {
    redis.defineCommand('reserveLiveJob', { numberOfKeys: 1, lua: RESERVE });
    this.redis = redis as WithReserve;
  }

  get max(): number {
    return this.config.maxLiveJobsPerTenant;
  }

  /** Takes a place for job `id`, or throws 429 `quota_exceeded`. */
  async reserve(tenant: string, id: string): Promise<void> {
    if (this.max === 0) return;
    const key = this.keys.liveJobs(tenant);
    if ((await this.redis.reserveLiveJob(key, this.max, id)) === 1) return;
    if ((await this.redis.set(this.keys.liveJobsPruned(tenant), '1', 'PX', RECOUNT_EVERY_MS, 'NX')) === 'OK') {
      await this.recount(tenant);
      if ((await this.redis.reserveLiveJob(key, this.max, id)) === 1) return;
    }
    throw new ApiError(
      429,
      'quota_exceeded',
      `tenant ${tenant} has ${this.max} queued or running jobs, the most MAX_QUEUED_JOBS_PER_TENANT allows; wait for one to end or cancel one`,
    );
  }

  /** Gives the place back (a submission that failed, a job cancelled before it started). */
  async release(tenant: string, id: string): Promise<void> {
    if (this.max === 0) return;
    await this.redis.srem(this.keys.liveJobs(tenant), id);
  }

  /** Removes the jobs that have ended (or are gone) from the tenant's set; returns how many are left. */
  async recount(tenant: string): Promise<number> {
    const key = this.keys.liveJobs(tenant);
    const ids = await this.redis.smembers(key);
    const metas = await this.records.metas(ids, tenant);
    const views = await Promise.all(metas.map((m) => (m ? this.records.view(m) : null)));
    const ended = ids.filter((_, i) => views[i] === null || isTerminal(views[i]!.state));
    if (ended.length) await this.redis.srem(key, ...ended);
    return ids.length - ended.length;
  }
}
