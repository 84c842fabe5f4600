/**
 * What the worker needs per job type beyond the shared table (`JOB_TYPE_SPECS` of @relu-lstm/jobs):
 * the handler that runs it and its wall-clock limit. Every handler listed here is registered, and
 * the consumer checks at boot that each type has exactly one.
 */
import type { Type } from '@nestjs/common';
import { JOB_TYPES, type JobType } from '@relu-lstm/jobs';
import type { WorkerConfig } from '../config';
import { InferHandler } from './infer.handler';
import type { JobHandler } from './job-handler';
import { TrainHandler } from './train.handler';

export interface WorkerJobType<T extends JobType> {
  handler: Type<JobHandler<T>>;
  /** Wall-clock limit of one attempt (JOB_TIMEOUT_<TYPE>_MS). */
  timeoutMs: (config: WorkerConfig) => number;
}

export const WORKER_JOB_TYPES = {
  train: { handler: TrainHandler, timeoutMs: (c) => c.timeouts.trainMs },
  infer: { handler: InferHandler, timeoutMs: (c) => c.timeouts.inferMs },
} satisfies { [T in JobType]: WorkerJobType<T> };

/** The handler classes, one per job type, for the module to provide. */
export const HANDLER_CLASSES: Array<Type<JobHandler>> = JOB_TYPES.map((t) => WORKER_JOB_TYPES[t].handler);
