/**
 * What a job handler is: one per job type (`WORKER_JOB_TYPES`, job-types.ts), registered under
 * `JOB_HANDLERS` and checked at boot (a type without a handler, or with two, stops the worker from
 * starting).
 */
import type { Job } from 'bullmq';
import {
  JOB_TYPES,
  type JobLabels,
  type JobResult,
  type JobType,
  type ModelSource,
  type PayloadOf,
  type ResultOf,
} from '@relu-lstm/jobs';

/**
 * Why a running job is asked to stop: a cancel from the api, the worker shutting down, the job's
 * wall-clock limit (JOB_TIMEOUT_*_MS), or the lock lost to another worker (`lost`: write nothing).
 */
export type StopReason = 'cancel' | 'shutdown' | 'timeout' | 'lost';

/** A one-shot stop request a handler can observe. The first reason wins. */
export class StopRequest {
  private reasonValue: StopReason | null = null;
  private readonly listeners: Array<(r: StopReason) => void> = [];

  get reason(): StopReason | null {
    return this.reasonValue;
  }

  request(reason: StopReason): void {
    if (this.reasonValue !== null) return;
    this.reasonValue = reason;
    for (const l of this.listeners.splice(0)) l(reason);
  }

  /** Calls `listener` once when a stop is requested (at once if it already was). */
  onStop(listener: (r: StopReason) => void): void {
    if (this.reasonValue !== null) listener(this.reasonValue);
    else this.listeners.push(listener);
  }
}

/**
 * Whether this attempt still holds the job's lock. The consumer confirms it at every poll; `held()`
 * answers from the last confirmation while that is recent (younger than `freshMs`, well inside the
 * lock's life) and asks Redis again otherwise, e.g. right after the process was paused (SIGSTOP) for
 * longer than that, before anything it had queued is written.
 */
export class LockWatch {
  private confirmedAt = Date.now();
  private lostValue = false;

  constructor(
    private readonly check: () => Promise<boolean>,
    private readonly freshMs: number,
    private readonly onLost: () => void,
  ) {}

  get lost(): boolean {
    return this.lostValue;
  }

  /** Asks Redis; a `false` marks the lock lost for good. */
  async refresh(): Promise<boolean> {
    const asked = Date.now();
    const ok = await this.check();
    if (ok) this.confirmedAt = Math.max(this.confirmedAt, asked);
    else this.markLost();
    return ok;
  }

  markLost(): void {
    if (this.lostValue) return;
    this.lostValue = true;
    this.onLost();
  }

  async held(): Promise<boolean> {
    if (this.lostValue) return false;
    if (Date.now() - this.confirmedAt < this.freshMs) return true;
    return this.refresh();
  }
}

export interface JobContext<T extends JobType = JobType> {
  job: Job<unknown, JobResult, string>;
  /** The lock token of this attempt. */
  token: string;
  jobId: string;
  tenant: string;
  payload: PayloadOf<T>;
  /** The job's name and tags, for its artifacts. */
  labels: JobLabels;
  /** The trained model the payload names (`modelSourceOf`), if any. */
  modelSource: ModelSource | null;
  /** 1-based: failed attempts so far plus this one. */
  attempt: number;
  stop: StopRequest;
  /** Wall-clock limit of this attempt (ms): `stop` is requested with `timeout` when it runs out. */
  timeoutMs: number;
  /** This attempt's hold on the job's lock; once lost, `stop` is requested with `lost`. */
  lock: LockWatch;
}

export interface JobHandler<T extends JobType = JobType> {
  readonly type: T;
  run(ctx: JobContext<T>): Promise<ResultOf<T>>;
}

/** Injection token of the list of handlers. */
export const JOB_HANDLERS = Symbol('JOB_HANDLERS');

/** The handlers by job type; throws (the worker does not start) when a type has none or two. */
export function handlersByType(handlers: readonly JobHandler[]): Map<JobType, JobHandler> {
  const byType = new Map<JobType, JobHandler>();
  for (const h of handlers) {
    if (byType.has(h.type)) throw new Error(`two handlers for job type '${h.type}'`);
    byType.set(h.type, h);
  }
  const missing = JOB_TYPES.filter((t) => !byType.has(t));
  if (missing.length) throw new Error(`no handler for job type(s) ${missing.join(', ')}`);
  return byType;
}
