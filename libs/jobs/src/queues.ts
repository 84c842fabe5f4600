/**
 * Queues and routing. There are three BullMQ queues per prefix, named by the device they serve:
 *
 *   device 'gpu' -> queue `gpu`  consumed only by GPU-backed workers
 *   device 'cpu' -> queue `cpu`  consumed only by CPU workers (tfjs-node, wasm or cpu backend)
 *   device 'any' -> queue `any`  consumed by every worker
 *
 * Both job types share the queues; the BullMQ job name is the job type (`train` | `infer`), the
 * BullMQ job id is the public job id (a random UUID), and the BullMQ `prefix` option is the
 * configured queue prefix (`QUEUE_PREFIX`, default `relu-lstm`), so a queue's Redis keys are
 * `<prefix>:<queue>:...`. The job data is a `JobData` envelope (type, tenant, limits, payload).
 *
 * `planJob` is the one place that decides a job's queue, name, data and BullMQ options; the api and
 * the client's QueueClient both call it, and the worker never re-derives any of it.
 */
import { randomUUID } from 'node:crypto';
import type { JobMeta, JobType } from './events';
import { byJobType, JOB_TYPE_SPECS, type JobDataOf, type PayloadOf } from './job-types';
import type { JobOptions } from './job-options';
import { JOB_PRIORITY, type PayloadLimits } from './limits';
import type { ModelVersionRef } from './model-names';
import type { Device } from './payloads';

export const QUEUE_NAMES = ['gpu', 'cpu', 'any'] as const;
export type QueueName = (typeof QUEUE_NAMES)[number];

export const DEFAULT_QUEUE_PREFIX = 'relu-lstm';

/** A prefix is one Redis key segment: no ':' inside, no spaces. */
export const QUEUE_PREFIX_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

export function queueForDevice(device: Device): QueueName {
  return device;
}

/** Queues a worker consumes: GPU-backed workers take `gpu` and `any`, the others `cpu` and `any`. */
export function queuesForWorker(worker: { gpu: boolean }): QueueName[] {
  return worker.gpu ? ['gpu', 'any'] : ['cpu', 'any'];
}

/** What a queue asks of a worker's backend (`BackendInfo.gpu` of the engine), beyond being live. */
interface QueueRequirement {
  /** Said to operators and clients: "a live worker serving the gpu queue (<needs>)". */
  needs: string;
  met(backend: { gpu: boolean }): boolean;
}

const QUEUE_REQUIREMENTS = {
  gpu: { needs: 'hardware GPU backend', met: (b) => b.gpu },
  cpu: null,
  any: null,
} satisfies Record<QueueName, QueueRequirement | null>;

/**
 * The queues a worker consumes: those WORKER_QUEUES names (`requested`), else its backend's
 * (`queuesForWorker`), less the ones its backend cannot serve (a GPU job never runs on a CPU
 * backend); should none be left, its backend's. `refused`: the requested ones left out, with why.
 */
export function servedQueues(
  requested: readonly QueueName[] | null,
  backend: { gpu: boolean },
): { queues: QueueName[]; refused: Array<{ queue: QueueName; needs: string }> } {
  const want = requested ?? queuesForWorker(backend);
  const refused: Array<{ queue: QueueName; needs: string }> = [];
  const queues = want.filter((queue) => {
    const r: QueueRequirement | null = QUEUE_REQUIREMENTS[queue];
    if (r === null || r.met(backend)) return true;
    refused.push({ queue, needs: r.needs });
    return false;
  });
  return { queues: queues.length ? queues : queuesForWorker(backend), refused };
}

/**
 * What a job queued on `queue` waits for while none of the `live` workers serves that queue and the
 * queue needs a capability (`gpu`): "a live worker serving the gpu queue (hardware GPU backend)";
 * null when a live worker serves it, or when any worker can (`cpu`, `any`).
 */
export function waitingForOf(queue: QueueName, live: ReadonlyArray<{ queues: readonly string[] }>): string | null {
  const r: QueueRequirement | null = QUEUE_REQUIREMENTS[queue];
  if (r === null || live.some((w) => w.queues.includes(queue))) return null;
  return `a live worker serving the ${queue} queue (${r.needs})`;
}

/** The one tenant the api serves while it has no API keys configured (then it listens on loopback only). */
export const DEFAULT_TENANT = 'default';

/** Retry and retention policy of jobs, by type. Defaults below; the api's config may override. */
export interface JobPolicy {
  attempts: Record<JobType, number>;
  /** Exponential backoff base delay between attempts. */
  backoffMs: number;
  /** Completed jobs are kept this long (and at most `keepCompletedCount` of them per queue). */
  keepCompletedSec: number;
  keepCompletedCount: number;
  /** Failed (and cancelled) jobs are kept this long, and at most `keepFailedCount` of them per queue. */
  keepFailedSec: number;
  keepFailedCount: number;
}

export const DEFAULT_JOB_POLICY: Readonly<JobPolicy> = Object.freeze({
  attempts: Object.freeze(byJobType((t) => JOB_TYPE_SPECS[t].attempts)),
  backoffMs: 5_000,
  keepCompletedSec: 7 * 24 * 3600,
  keepCompletedCount: 10_000,
  keepFailedSec: 30 * 24 * 3600,
  keepFailedCount: 10_000,
});

/** BullMQ `JobsOptions` subset that `planJob` sets (structurally compatible with bullmq's type). */
export interface PlannedJobOptions {
  jobId: string;
  attempts: number;
  backoff: { type: 'exponential'; delay: number };
  removeOnComplete: { age: number; count: number };
  removeOnFail: { age: number; count: number };
  /** BullMQ priority: set by `produceJob` from the job's priority and its tenant's share (`FAIR_SHARE`). */
  priority?: number;
}

export interface PlannedJob<T extends JobType = JobType> {
  id: string;
  queue: QueueName;
  /** BullMQ job name. */
  name: T;
  data: JobDataOf<T>;
  opts: PlannedJobOptions;
  meta: JobMeta;
}

const publicVersion = (v: ModelVersionRef) => ({ name: v.name, version: v.version });

/** Decides everything about a new job from its validated payload and the limits it was validated under. */
export function planJob<T extends JobType>(
  type: T,
  payload: PayloadOf<T>,
  options: {
    limits: PayloadLimits;
    tenant?: string;
    id?: string;
    now?: number;
    policy?: JobPolicy;
    /** Its validated name, tags and priority (job-options.ts). */
    job?: JobOptions;
    /** The registered model version the payload's reference resolved to. */
    modelVersion?: ModelVersionRef;
  },
): PlannedJob<T> {
  const id = options.id ?? randomUUID();
  const tenant = options.tenant ?? DEFAULT_TENANT;
  const policy = options.policy ?? DEFAULT_JOB_POLICY;
  const device = payload.device;
  const queue = queueForDevice(device);
  const { name, tags, priority } = options.job ?? { priority: JOB_PRIORITY.default };
  const labels = { ...(name !== undefined && { name }), ...(tags !== undefined && { tags }) };
  return {
    id,
    queue,
    name: type,
    data: {
      type,
      tenant,
      limits: options.limits,
      payload,
      ...labels,
      ...(options.modelVersion ? { modelVersion: options.modelVersion } : {}),
    } as JobDataOf<T>,
    opts: {
      jobId: id,
      attempts: policy.attempts[type],
      backoff: { type: 'exponential', delay: policy.backoffMs },
      removeOnComplete: { age: policy.keepCompletedSec, count: policy.keepCompletedCount },
      removeOnFail: { age: policy.keepFailedSec, count: policy.keepFailedCount },
    },
    meta: {
      id,
      type,
      queue,
      device,
      tenant,
      createdAt: options.now ?? Date.now(),
      ...labels,
      priority,
      ...(options.modelVersion ? { modelVersion: publicVersion(options.modelVersion) } : {}),
    },
  };
}
