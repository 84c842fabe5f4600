/**
 * How a job ends badly. Every failure is thrown with `encodeJobError` as its message, so
 * `job.failedReason` is a `JobError` the api can show as is; permanent codes are thrown as BullMQ's
 * `UnrecoverableError` (no retry), the others as plain errors (BullMQ retries with backoff).
 */
import { UnrecoverableError } from 'bullmq';
import {
  PERMANENT_ERROR_CODES,
  decodeJobError,
  encodeJobError,
  type JobError,
  type JobErrorInput,
} from '@relu-lstm/jobs';

export function isPermanent(code: JobErrorInput['code']): boolean {
  return PERMANENT_ERROR_CODES.includes(code);
}

/** The error to throw from a processor for `e`. */
export function jobFailure(e: JobErrorInput): Error {
  const permanent = isPermanent(e.code);
  const message = encodeJobError({ ...e, retryable: !permanent });
  return permanent ? new UnrecoverableError(message) : new Error(message);
}

/** The `JobError` of an error thrown by a processor (or by BullMQ, e.g. "job stalled more than allowable limit"). */
export function jobErrorOf(err: Error | undefined): JobError {
  return decodeJobError(err?.message);
}
