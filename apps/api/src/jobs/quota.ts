/**
 * The per-tenant quota of queued + running jobs (`MAX_QUEUED_JOBS_PER_TENANT`).
 *
 * Each tenant has a Redis set of the ids of its jobs that may still be live. A submission adds its
 * id in the same script that writes its records (`produceJob` of @relu-lstm/jobs, given the set as
 * its `quota`), which refuses when the set is full, so concurrent submissions (from any number of
 * api processes) can never overshoot, and the place costs no round trip of its own. Jobs end in the
 * worker, which knows nothing of the set; instead of a counter that every ending must decrement (and
 * that drifts when a worker dies at the wrong moment), a full set is recounted from the jobs' real
 * state (BullMQ, then the event stream) before a submission is refused: ended jobs leave the set.
 * An id enters the set with its meta, so a recount never mistakes a submission in flight for a job
 * that is gone. The recount costs one view per member, so it runs at most once a second per
 * tenant; a freed place is seen within that second.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { isTerminal, LiveQuotaFullError, type LiveQuota, type RedisKeys } from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { CONFIG, KEYS, REDIS } from '../infra/tokens';
import { JobRecords } from './job-records';

const RECOUNT_EVERY_MS = 1000;

@Injectable()
export class JobQuota {
  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    private readonly records: JobRecords,
  ) {}

  get max(): number {
    return this.config.maxLiveJobsPerTenant;
  }

  /**
   * Runs `produce` with the tenant's live set (undefined without a quota). When it finds the set
   * full, recounts the set (at most once a second per tenant) and tries once more; still full:
   * 429 `quota_exceeded`.
   */
  async admit<T>(tenant: string, produce: (quota: LiveQuota | undefined) => Promise<T>): Promise<T> {
    if (this.max === 0) return produce(undefined);
    const quota: LiveQuota = { key: this.keys.liveJobs(tenant), max: this.max };
    try {
      return await produce(quota);
    } catch (e) {
      if (!(e instanceof LiveQuotaFullError)) throw e;
    }
    if ((await this.redis.set(this.keys.liveJobsPruned(tenant), '1', 'PX', RECOUNT_EVERY_MS, 'NX')) === 'OK') {
      await this.recount(tenant);
      try {
        return await produce(quota);
      } catch (e) {
        if (!(e instanceof LiveQuotaFullError)) throw e;
      }
    }
    throw new ApiError(
      429,
      'quota_exceeded',
      `tenant ${tenant} has ${this.max} queued or running jobs, the most MAX_QUEUED_JOBS_PER_TENANT allows; wait for one to end or cancel one`,
    );
  }

  /** Gives the place back (a job cancelled before it started). */
  async release(tenant: string, id: string): Promise<void> {
    if (this.max === 0) return;
    await this.redis.srem(this.keys.liveJobs(tenant), id);
  }

  /** Removes the jobs that have ended (or are gone) from the tenant's set; returns how many are left. */
  async recount(tenant: string): Promise<number> {
    const key = this.keys.liveJobs(tenant);
    const ids = await this.redis.smembers(key);
    const views = await this.records.views(ids, tenant);
    const ended = ids.filter((_, i) => views[i] === null || isTerminal(views[i]!.state));
    if (ended.length) await this.redis.srem(key, ...ended);
    return ids.length - ended.length;
  }
}
