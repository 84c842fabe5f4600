/**
 * The worker's side of the job cost budget: the same estimate as the api's (`estimateJobCost`), so a
 * job put on the queue without the api (or under a larger api bound) fails at once with
 * `resource_exhausted` instead of growing the engine until the watchdog kills it; and the job error
 * of a run the engine did not finish.
 */
import {
  overBudget,
  estimateJobCost,
  inlineModelOf,
  unknownJobType,
  type CostedJob,
  type JobData,
  type JobErrorInput,
} from '@relu-lstm/jobs';
import { EngineOutOfMemoryError } from '../engine/memory-watchdog';

/** The job as the estimate can see it here: an infer job naming a trained model is sized by the watchdog alone. */
function costedJob(data: JobData): CostedJob | null {
  switch (data.type) {
    case 'train':
      return { type: 'train', payload: data.payload };
    case 'infer': {
      const model = inlineModelOf(data.payload)?.config;
      return model ? { type: 'infer', payload: data.payload, model } : null;
    }
    default:
      return unknownJobType(data);
  }
}

/** `resource_exhausted` for a job estimated over `maxJobMb`; null when it fits (or cannot be sized here). */
export function budgetRefusal(data: JobData, maxJobMb: number): JobErrorInput | null {
  const job = costedJob(data);
  const over = job && overBudget(estimateJobCost(job), maxJobMb);
  if (!over) return null;
  return {
    code: 'resource_exhausted',
    message: `refused before it started: ${over.message}`,
    details: { expected: over.expected, received: over.received },
  };
}

/** The job error of a run whose engine died or was killed under it (no stop was asked for). */
export function engineRunFailure(e: unknown): JobErrorInput {
  if (e instanceof EngineOutOfMemoryError) return e.toJobError();
  return { code: 'internal', message: (e as Error).message };
}
