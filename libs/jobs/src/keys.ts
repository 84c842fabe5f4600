/**
 * Every Redis key the runner uses besides BullMQ's own, in one place. All live under the
 * queue prefix, next to BullMQ's `<prefix>:<queue>:...` keys; the second segments used here (`job`,
 * `jobs`, `jobix`, `fair`, `idem`, `dataset`, `datasets`, `dataset-use`, `live`, `rate`, `worker`, `workers`, `retention`,
 * `model`, `models`, `model-blobs`, `sweep`, `session`, `session-steps`, `session-replies`) are never
 * queue names.
 *
 * | key                                   | type   | written by          | holds                                  |
 * |---------------------------------------|--------|---------------------|----------------------------------------|
 * | `<p>:job:<id>`                        | string | producer            | `JobMeta` JSON (type, queue, tenant)   |
 * | `<p>:job:<id>:events`                 | stream | producer, worker    | the job's full event history           |
 * | `<p>:job:<id>:cancel`                 | string | api (DELETE)        | `CancelRequest` JSON                   |
 * | `<p>:job:<id>:checkpoint`             | string | worker              | `CheckpointPointer` JSON (optional)    |
 * | `<p>:job:<id>:published`              | string | worker (lock holder)| the train job's chosen artifact set    |
 * | `<p>:jobs:<tenant>`                   | zset   | producer            | job ids by creation time (listing)     |
 * | `<p>:jobix:<tenant>:type:<type>`      | zset   | producer            | the same, of one type (search)         |
 * | `<p>:jobix:<tenant>:name:<name>`      | zset   | producer            | the same, of one name (search)         |
 * | `<p>:jobix:<tenant>:tag:<k>:<v>`      | zset   | producer            | the same, of one tag (search)          |
 * | `<p>:fair:<queue>`                    | hash   | producer            | last turn per tenant and priority      |
 * | `<p>:idem:<tenant>:<sha256(key)>`     | string | api                 | `{ id, type, bodyHash }`, TTL 24 h     |
 * | `<p>:dataset:<id>`                    | string | api                 | `DatasetMeta` JSON                     |
 * | `<p>:dataset:<id>:jobs`               | zset   | api (submit)        | ids of jobs naming it, by submit time  |
 * | `<p>:datasets:<tenant>`               | zset   | api                 | dataset ids by creation time           |
 * | `<p>:datasets:<tenant>:bytes`         | string | api                 | bytes of the tenant's datasets (quota) |
 * | `<p>:dataset-use`                     | zset   | api, worker         | dataset ids by last upload or use      |
 * | `<p>:live:<tenant>`                   | set    | api (submit)        | ids of jobs counted against the quota  |
 * | `<p>:live:<tenant>:pruned`            | string | api (submit)        | marker, PX 1 s: last quota recount     |
 * | `<p>:rate:<kind>:<subject>`           | hash   | api (every request) | token bucket `{ t, ts }` of a tenant/IP |
 * | `<p>:worker:<workerId>`               | string | worker              | `WorkerHeartbeat` JSON, TTL 15 s       |
 * | `<p>:workers`                         | zset   | worker              | worker ids scored by heartbeat expiry  |
 * | `<p>:retention:lock`                  | string | worker              | retention sweeper's lock, PX = period  |
 * | `<p>:model:<tenant>:<name>`           | hash   | api                 | `createdAt`, `seq`, `alias:<a>` -> version |
 * | `<p>:model:<tenant>:<name>:versions`  | hash   | api                 | version -> `ModelVersionRecord` JSON   |
 * | `<p>:models:<tenant>`                 | zset   | api                 | model names by creation time           |
 * | `<p>:models:<tenant>:count`           | string | api                 | the tenant's registered versions (quota) |
 * | `<p>:model-blobs`                     | set    | api                 | storage ids of registered versions (retention keeps them) |
 * | `<p>:sweep:<id>`                      | string | api (POST sweeps)   | `SweepRecord` JSON                     |
 * | `<p>:sweep:<id>:running`              | set    | worker              | trial ids holding a sweep slot (gate)  |
 * | `<p>:sweep:<id>:at-k`                 | hash   | worker              | trial id -> metric after K epochs      |
 * | `<p>:sweep:<id>:reported`             | set    | api, worker         | trial ids whose `trial` event is out   |
 * | `<p>:session:<id>`                    | hash   | api, worker         | a session's model, next seq, (h, c)    |
 * | `<p>:session-steps`                   | list   | api                 | `SessionStepRequest` JSON, the step queue |
 * | `<p>:session-replies:<apiId>`         | channel| worker              | pub/sub: replies to one api process    |
 */
import { createHash } from 'node:crypto';
import type { JobType } from './events';
import { QUEUE_PREFIX_PATTERN } from './queues';

/** One filter of the job search; each has its own index (names and tags are bounded by `LABEL_LIMITS`). */
export type JobIndexFilter = { type: JobType } | { name: string } | { tag: readonly [string, string] };

function filterSegment(f: JobIndexFilter): string {
  if ('type' in f) return `type:${f.type}`;
  if ('name' in f) return `name:${f.name}`;
  return `tag:${f.tag[0]}:${f.tag[1]}`;
}

/** Ids that may appear in a key or as a file name: UUIDs, worker ids like `host-pid-xyz`, tenants. */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function assertSafeId(what: string, id: string): void {
  if (!SAFE_ID.test(id))
    throw new Error(`${what}: expected an id of letters, digits, '.', '-' and '_', got ${JSON.stringify(id)}`);
}

export interface RedisKeys {
  readonly prefix: string;
  jobMeta(id: string): string;
  events(id: string): string;
  cancel(id: string): string;
  checkpoint(id: string): string;
  /** The artifact set chosen for a job by the attempt that held its lock (worker's publish step). */
  published(id: string): string;
  jobIndex(tenant: string): string;
  /** The tenant's jobs of one type, name or tag, by creation time (job-index.ts). */
  jobFilterIndex(tenant: string, filter: JobIndexFilter): string;
  /** Per queue: the last fair-share turn given to each tenant at each priority (producer.ts `FAIR_SHARE`). */
  fairShare(queue: string): string;
  idempotency(tenant: string, key: string): string;
  dataset(id: string): string;
  datasetIndex(tenant: string): string;
  /** Jobs submitted naming the dataset (DELETE refuses while one is live). */
  datasetJobs(id: string): string;
  /** The stored bytes of the tenant's datasets, for its quota. */
  datasetBytes(tenant: string): string;
  /** Every dataset by the time of its upload or last use, for the worker's retention sweep. */
  datasetUse(): string;
  /** The tenant's queued or running jobs (submitted through the api), for its quota. */
  liveJobs(tenant: string): string;
  /** Marker set when the tenant's live set was last recounted (limits recounts to one a second). */
  liveJobsPruned(tenant: string): string;
  /** Token bucket of a tenant, of the admin key, or of a client address (hashed: addresses hold ':'). */
  rateLimit(kind: 'tenant' | 'admin' | 'ip', subject: string): string;
  worker(workerId: string): string;
  workers(): string;
  retentionLock(): string;
  /** A registered model (models.ts). */
  model(tenant: string, name: string): string;
  modelVersions(tenant: string, name: string): string;
  /** The tenant's model names by creation time. */
  modelIndex(tenant: string): string;
  /** The tenant's registered versions, for its quota (MAX_MODEL_VERSIONS_PER_TENANT). */
  modelCount(tenant: string): string;
  /** Storage ids of every registered version: the retention sweep never removes these. */
  modelBlobs(): string;
  /** A sweep's record (sweeps.ts); its events share `events(sweepId)`, its cancel flag `cancel(sweepId)`. */
  sweep(id: string): string;
  /** The trials of a sweep holding one of its `maxConcurrent` slots. */
  sweepRunning(id: string): string;
  /** Each trial's metric after the median stopping rule's K epochs. */
  sweepAtK(id: string): string;
  /** The trials whose `trial` event is on the sweep's stream (each is written once). */
  sweepReported(id: string): string;
  /** A streaming inference session (sessions.ts), PX = its idle TTL. */
  session(id: string): string;
  /** The step queue of all sessions (a list: the api pushes, workers pop). */
  sessionSteps(): string;
  /** The pub/sub channel of the replies to the steps one api process waits for. */
  sessionReplies(apiId: string): string;
}

export function redisKeys(prefix: string): RedisKeys {
  if (!QUEUE_PREFIX_PATTERN.test(prefix)) {
    throw new Error(`queue prefix: expected ${QUEUE_PREFIX_PATTERN}, got ${JSON.stringify(prefix)}`);
  }
  const id = (what: string, v: string) => {
    assertSafeId(what, v);
    return v;
  };
  return {
    prefix,
    jobMeta: (j) => `${prefix}:job:${id('job id', j)}`,
    events: (j) => `${prefix}:job:${id('job id', j)}:events`,
    cancel: (j) => `${prefix}:job:${id('job id', j)}:cancel`,
    checkpoint: (j) => `${prefix}:job:${id('job id', j)}:checkpoint`,
    published: (j) => `${prefix}:job:${id('job id', j)}:published`,
    jobIndex: (t) => `${prefix}:jobs:${id('tenant', t)}`,
    jobFilterIndex: (t, f) => `${prefix}:jobix:${id('tenant', t)}:${filterSegment(f)}`,
    fairShare: (q) => `${prefix}:fair:${q}`,
    idempotency: (t, key) => `${prefix}:idem:${id('tenant', t)}:${createHash('sha256').update(key).digest('hex')}`,
    dataset: (d) => `${prefix}:dataset:${id('dataset id', d)}`,
    datasetIndex: (t) => `${prefix}:datasets:${id('tenant', t)}`,
    datasetJobs: (d) => `${prefix}:dataset:${id('dataset id', d)}:jobs`,
    datasetBytes: (t) => `${prefix}:datasets:${id('tenant', t)}:bytes`,
    datasetUse: () => `${prefix}:dataset-use`,
    liveJobs: (t) => `${prefix}:live:${id('tenant', t)}`,
    liveJobsPruned: (t) => `${prefix}:live:${id('tenant', t)}:pruned`,
    rateLimit: (kind, s) =>
      `${prefix}:rate:${kind}:${kind === 'ip' ? createHash('sha256').update(s).digest('hex').slice(0, 32) : id('tenant', s)}`,
    worker: (w) => `${prefix}:worker:${id('worker id', w)}`,
    workers: () => `${prefix}:workers`,
    retentionLock: () => `${prefix}:retention:lock`,
    model: (t, n) => `${prefix}:model:${id('tenant', t)}:${id('model name', n)}`,
    modelVersions: (t, n) => `${prefix}:model:${id('tenant', t)}:${id('model name', n)}:versions`,
    modelIndex: (t) => `${prefix}:models:${id('tenant', t)}`,
    modelCount: (t) => `${prefix}:models:${id('tenant', t)}:count`,
    modelBlobs: () => `${prefix}:model-blobs`,
    sweep: (s) => `${prefix}:sweep:${id('sweep id', s)}`,
    sweepRunning: (s) => `${prefix}:sweep:${id('sweep id', s)}:running`,
    sweepAtK: (s) => `${prefix}:sweep:${id('sweep id', s)}:at-k`,
    sweepReported: (s) => `${prefix}:sweep:${id('sweep id', s)}:reported`,
    session: (s) => `${prefix}:session:${id('session id', s)}`,
    sessionSteps: () => `${prefix}:session-steps`,
    sessionReplies: (a) => `${prefix}:session-replies:${id('api id', a)}`,
  };
}
