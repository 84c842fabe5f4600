/**
 * The tenant's datasets in Redis: the metadata, the index by creation time (`GET /v1/datasets`),
 * the per-tenant quota (MAX_DATASETS_PER_TENANT, MAX_DATASET_BYTES_PER_TENANT), the jobs that name
 * each dataset (DELETE refuses while one is live) and the time of its last use (the worker's
 * retention sweep, DATASET_KEEP_UNUSED_SEC). Every write that must see the others (store against
 * the quota, delete against a submission) is one Lua script.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  DatasetMetaSchema,
  isTerminal,
  removeDatasetRecords,
  SAFE_ID,
  validate,
  type DatasetList,
  type DatasetMeta,
  type DatasetView,
  type RedisKeys,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { cursorOf, PageQuerySchema, parseCursor, servedBefore } from '../http/cursor';
import { ApiError } from '../http/errors';
import { CONFIG, KEYS, REDIS } from '../infra/tokens';
import { JobRecords } from '../jobs/job-records';

/** A job id in a dataset's set with no meta yet is a submission in flight for this long. */
const IN_FLIGHT_MS = 60_000;

export function datasetView(meta: DatasetMeta): DatasetView {
  const { tenant: _t, ...rest } = meta;
  return rest;
}

// KEYS: meta, index, bytes, use. ARGV: meta JSON, createdAt, id, bytes, max count (0: none), max bytes.
// Returns {1} stored, or {0, 'count' | 'bytes', usage}.
const STORE = `
local count = redis.call('ZCARD', KEYS[2])
local used = tonumber(redis.call('GET', KEYS[3]) or '0')
if tonumber(ARGV[5]) > 0 and count >= tonumber(ARGV[5]) then return {0, 'count', count} end
if used + tonumber(ARGV[4]) > tonumber(ARGV[6]) then return {0, 'bytes', used} end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
redis.call('INCRBY', KEYS[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[3])
return {1}
`;

// KEYS: meta, jobs, use. ARGV: job id, now, dataset id. 0: the dataset is gone.
const REFERENCE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[3])
return 1
`;

@Injectable()
export class DatasetCatalog {
  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    private readonly records: JobRecords,
  ) {}

  /** The tenant's dataset if it exists and is theirs; null otherwise (both look the same). */
  async meta(id: string, tenant: string): Promise<DatasetMeta | null> {
    const raw = SAFE_ID.test(id) ? await this.redis.get(this.keys.dataset(id)) : null;
    const meta = raw ? DatasetMetaSchema.safeParse(JSON.parse(raw)) : null;
    return meta?.success && meta.data.tenant === tenant ? meta.data : null;
  }

  /** Before reading an upload: 429 if the tenant is already at a bound. */
  async checkRoom(tenant: string): Promise<void> {
    const [count, used] = await Promise.all([
      this.redis.zcard(this.keys.datasetIndex(tenant)),
      this.redis.get(this.keys.datasetBytes(tenant)),
    ]);
    if (this.config.maxDatasetsPerTenant > 0 && count >= this.config.maxDatasetsPerTenant) throw this.countFull(count);
    if (Number(used ?? 0) >= this.config.maxDatasetBytesPerTenant) throw this.bytesFull(Number(used), 0);
  }

  /** Records a stored dataset against the quota: 429 (count) or 413 (bytes) if it does not fit. */
  async record(meta: DatasetMeta): Promise<void> {
    const { tenant, id } = meta;
    const res = (await this.redis.eval(
      STORE,
      4,
      this.keys.dataset(id),
      this.keys.datasetIndex(tenant),
      this.keys.datasetBytes(tenant),
      this.keys.datasetUse(),
      JSON.stringify(meta),
      meta.createdAt,
      id,
      meta.bytes,
      this.config.maxDatasetsPerTenant,
      this.config.maxDatasetBytesPerTenant,
    )) as [number, string?, number?];
    if (res[0] === 1) return;
    throw res[1] === 'count' ? this.countFull(res[2]!) : this.bytesFull(res[2]!, meta.bytes);
  }

  private countFull(count: number): ApiError {
    return new ApiError(
      429,
      'quota_exceeded',
      `the tenant has ${count} datasets, the most MAX_DATASETS_PER_TENANT (${this.config.maxDatasetsPerTenant}) allows; delete one first`,
    );
  }

  private bytesFull(used: number, adding: number): ApiError {
    const bound = this.config.maxDatasetBytesPerTenant;
    const message = `the tenant's datasets hold ${used} bytes; ${adding ? `${adding} more` : 'more'} would pass MAX_DATASET_BYTES_PER_TENANT (${bound} bytes); delete some first`;
    return adding ? new ApiError(413, 'payload_too_large', message) : new ApiError(429, 'quota_exceeded', message);
  }

  /** Newest first; the cursor as GET /v1/jobs's. */
  async list(query: unknown, tenant: string): Promise<DatasetList> {
    const q = validate(PageQuerySchema, query);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { limit, cursor } = q.value;
    const after = cursor ? parseCursor(cursor) : null;
    const raw = await this.redis.zrevrangebyscore(
      this.keys.datasetIndex(tenant),
      after ? String(after.score) : '+inf',
      '-inf',
      'WITHSCORES',
      'LIMIT',
      0,
      // Entries with the cursor's score that were served come first: skip them too.
      limit + 1 + (after ? await this.redis.zcount(this.keys.datasetIndex(tenant), after.score, after.score) : 0),
    );
    const entries = [];
    for (let i = 0; i < raw.length; i += 2) {
      const e = { id: raw[i], score: Number(raw[i + 1]) };
      if (!servedBefore(e, after)) entries.push(e);
    }
    const page = entries.slice(0, limit);
    const raws = page.length ? await this.redis.mget(...page.map((e) => this.keys.dataset(e.id))) : [];
    const items = raws.flatMap((r) => {
      const m = r ? DatasetMetaSchema.safeParse(JSON.parse(r)) : null;
      return m?.success ? [datasetView(m.data)] : [];
    });
    return { items, nextCursor: entries.length > limit ? cursorOf(page[page.length - 1]) : null };
  }

  /** The ids of the queued or running jobs that name the dataset; ended ones leave its set. */
  private async liveJobs(id: string, tenant: string): Promise<string[]> {
    const key = this.keys.datasetJobs(id);
    const raw = await this.redis.zrangebyscore(key, '-inf', '+inf', 'WITHSCORES');
    const entries = [];
    for (let i = 0; i < raw.length; i += 2) entries.push({ id: raw[i], at: Number(raw[i + 1]) });
    const metas = await this.records.metas(
      entries.map((e) => e.id),
      tenant,
    );
    const views = await Promise.all(metas.map((m) => (m ? this.records.view(m) : Promise.resolve(null))));
    const inFlightSince = Date.now() - IN_FLIGHT_MS;
    const live = entries.filter((e, i) => (views[i] ? !isTerminal(views[i]!.state) : e.at > inFlightSince));
    const ended = entries.filter((e) => !live.includes(e)).map((e) => e.id);
    if (ended.length) await this.redis.zrem(key, ...ended);
    return live.map((e) => e.id);
  }

  /** Removes the dataset's records (the caller removes the arrays): 404 if not theirs, 409 naming live jobs. */
  async remove(id: string, tenant: string): Promise<void> {
    const meta = await this.meta(id, tenant);
    if (!meta) throw ApiError.notFound(`dataset ${id}`);
    let live = await this.liveJobs(id, tenant);
    if (live.length === 0) {
      if (await removeDatasetRecords(this.redis, this.keys, meta)) return;
      // A submission entered the set since the check, or a concurrent delete removed it.
      live = await this.liveJobs(id, tenant);
      if (live.length === 0) throw ApiError.notFound(`dataset ${id}`);
    }
    throw new ApiError(
      409,
      'conflict',
      `dataset ${id} is used by queued or running jobs: ${live.join(', ')}; cancel them or wait for them to end`,
    );
  }

  /** Notes that job `jobId` names the dataset, before it is queued; false if the dataset is gone. */
  async reference(datasetId: string, jobId: string): Promise<boolean> {
    const now = Date.now();
    const args = [this.keys.dataset(datasetId), this.keys.datasetJobs(datasetId), this.keys.datasetUse()];
    return (await this.redis.eval(REFERENCE, 3, ...args, jobId, now, datasetId)) === 1;
  }

  /** A submission that was not queued. */
  async unreference(datasetId: string, jobId: string): Promise<void> {
    await this.redis.zrem(this.keys.datasetJobs(datasetId), jobId);
  }
}
