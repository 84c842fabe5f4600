/**
 * Reading a job back: its meta, and its public view assembled from BullMQ (state, attempts,
 * progress, result, error, the payload's size but never the payload), the cancel flag and, when
 * BullMQ no longer has it, the job's own event stream.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  JobMetaSchema,
  ProgressEventSchema,
  SAFE_ID,
  decodeJobError,
  isTerminal,
  type JobEventStream,
  type JobLinks,
  type JobMeta,
  type JobState,
  type JobView,
  type ProgressEvent,
  type QueueName,
  type RedisKeys,
  type StateEvent,
} from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { JobQueues } from '../infra/job-queues';
import { EVENT_STREAM, KEYS, REDIS } from '../infra/tokens';

export function linksOf(id: string): JobLinks {
  return { self: `/v1/jobs/${id}`, events: `/v1/jobs/${id}/events`, artifacts: `/v1/jobs/${id}/artifacts` };
}

/** BullMQ state -> public state (a failed job whose reason is `cancelled` is `cancelled`). */
export function publicState(bullState: string, failedReason?: string): JobState {
  switch (bullState) {
    case 'active':
      return 'running';
    case 'completed':
      return 'completed';
    case 'failed':
      return decodeJobError(failedReason).code === 'cancelled' ? 'cancelled' : 'failed';
    default:
      return 'queued';
  }
}

@Injectable()
export class JobRecords {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(EVENT_STREAM) private readonly events: JobEventStream,
    private readonly queues: JobQueues,
  ) {}

  /** The job's meta if it exists and belongs to the tenant; null otherwise (both look the same). */
  async meta(id: string, tenant: string): Promise<JobMeta | null> {
    if (!SAFE_ID.test(id)) return null;
    const raw = await this.redis.get(this.keys.jobMeta(id));
    if (!raw) return null;
    const r = JobMetaSchema.safeParse(JSON.parse(raw));
    if (!r.success || r.data.tenant !== tenant) return null;
    return r.data;
  }

  /** `meta` for many ids in one round trip (MGET); entries line up with `ids`. */
  async metas(ids: string[], tenant: string): Promise<Array<JobMeta | null>> {
    const safe = ids.map((id) => SAFE_ID.test(id));
    const keys = ids.filter((_, i) => safe[i]).map((id) => this.keys.jobMeta(id));
    const raws = keys.length > 0 ? await this.redis.mget(...keys) : [];
    let k = 0;
    return ids.map((_, i) => {
      if (!safe[i]) return null;
      const raw = raws[k++];
      if (!raw) return null;
      const r = JobMetaSchema.safeParse(JSON.parse(raw));
      return r.success && r.data.tenant === tenant ? r.data : null;
    });
  }

  /** The views of the tenant's jobs among `ids` (one MGET for the metas, the views in parallel); entries line up with `ids`. */
  async views(ids: string[], tenant: string): Promise<Array<JobView | null>> {
    const metas = await this.metas(ids, tenant);
    return Promise.all(metas.map((m) => (m ? this.view(m) : Promise.resolve(null))));
  }

  async metaOr404(id: string, tenant: string): Promise<JobMeta> {
    const m = await this.meta(id, tenant);
    if (!m) throw ApiError.notFound(`job ${id}`);
    return m;
  }

  /** Newest state event and newest metric among the last entries of the stream. */
  private async lastFromStream(id: string): Promise<{ state: StateEvent | null; metric: ProgressEvent | null }> {
    const recent = await this.events.last(id, 50);
    let state: StateEvent | null = null;
    let metric: ProgressEvent | null = null;
    for (const { event } of recent) {
      if (!state && event.type === 'state') state = event;
      if (!metric && event.type === 'metric') {
        const { type: _t, at: _a, ...p } = event;
        metric = p;
      }
      if (state && metric) break;
    }
    return { state, metric };
  }

  async view(meta: JobMeta): Promise<JobView> {
    const [found, cancelRaw] = await Promise.all([
      this.queues.getJob(meta.queue as QueueName, meta.id),
      this.redis.exists(this.keys.cancel(meta.id)),
    ]);
    const base = {
      id: meta.id,
      type: meta.type,
      queue: meta.queue,
      device: meta.device,
      createdAt: meta.createdAt,
      links: linksOf(meta.id),
      ...(meta.name !== undefined && { name: meta.name }),
      ...(meta.tags !== undefined && { tags: meta.tags }),
      ...(meta.priority !== undefined && { priority: meta.priority }),
      ...(meta.modelVersion ? { modelVersion: meta.modelVersion } : {}),
    };
    if (found) {
      const state = publicState(found.state, found.failedReason);
      const progress = ProgressEventSchema.safeParse(found.progress);
      return {
        ...(state === 'queued' && meta.waitingFor !== undefined ? { waitingFor: meta.waitingFor } : {}),
        ...base,
        state,
        startedAt: found.processedOn,
        finishedAt: isTerminal(state) ? found.finishedOn : null,
        attempts: found.attemptsStarted || found.attemptsMade,
        maxAttempts: found.maxAttempts,
        // Kept on a job that finished before its cancel reached it: the record shows both facts.
        cancelRequested: cancelRaw === 1 && state !== 'cancelled',
        progress: progress.success ? progress.data : null,
        result: state === 'completed' ? (found.returnvalue ?? null) : null,
        error: state === 'failed' || state === 'cancelled' ? decodeJobError(found.failedReason) : null,
        payloadBytes: found.payloadBytes,
      };
    }
    // BullMQ no longer has it (cancelled while queued, or past retention): the stream tells.
    const { state: last, metric } = await this.lastFromStream(meta.id);
    const state: JobState = last?.state ?? 'failed';
    return {
      ...base,
      state,
      startedAt: null,
      finishedAt: last && isTerminal(last.state) ? last.at : null,
      attempts: last?.attempt ?? 0,
      maxAttempts: 0,
      cancelRequested: false,
      progress: metric,
      result: last?.result ?? null,
      error:
        last?.error ??
        (last ? null : { code: 'not_found', message: 'the queue record of this job is gone', retryable: false }),
      payloadBytes: null,
    };
  }
}
