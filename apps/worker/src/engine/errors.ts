/**
 * Turns what the library (or a store) throws into the job error the queue acts on: permanent codes
 * (`invalid_payload`, `not_found`, `diverged`, `cancelled`, `resource_exhausted`) end the job at once, the others retry.
 */
import { DivergenceError, ReluLstmError, TrainingAbortedError } from '@relu-lstm/lstm';
import type { JobErrorInput } from '@relu-lstm/jobs';

/** Library codes that mean "the payload (or what it points to) cannot run". */
const INVALID_PAYLOAD_CODES = new Set(['invalid_config', 'invalid_input', 'invalid_state_dict', 'invalid_safetensors']);

/** RangeErrors of an allocation past what the engine may hold (typed array, string, wasm memory). */
const OUT_OF_MEMORY =
  /Array buffer allocation failed|Invalid (?:string|array|typed array) length|Maximum memory size exceeded|Out of memory|could not allocate/i;

/** A problem with the payload found by the engine itself (e.g. a fromJob model of another shape). */
export class PayloadError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'PayloadError';
  }
}

export function toJobError(e: unknown): JobErrorInput {
  if (e instanceof DivergenceError) {
    return {
      code: 'diverged',
      message: e.message,
      retryable: false,
      details: { epoch: e.epoch, step: e.step, quantity: e.quantity, value: String(e.value) },
    };
  }
  if (e instanceof TrainingAbortedError) {
    return { code: 'cancelled', message: e.message, retryable: false, details: { epoch: e.epoch, step: e.step } };
  }
  if (e instanceof PayloadError) {
    return {
      code: 'invalid_payload',
      message: e.message,
      retryable: false,
      ...(e.field ? { details: { field: e.field } } : {}),
    };
  }
  if (e instanceof ReluLstmError) {
    if (INVALID_PAYLOAD_CODES.has(e.code)) {
      const field =
        (e as ReluLstmError & { field?: unknown; entry?: unknown }).field ?? (e as { entry?: unknown }).entry;
      return {
        code: 'invalid_payload',
        message: e.message,
        retryable: false,
        ...(typeof field === 'string' ? { details: { field } } : {}),
      };
    }
    if (e.code === 'backend_unavailable') return { code: 'backend_unavailable', message: e.message, retryable: true };
  }
  if ((e as { code?: unknown })?.code === 'not_found') {
    return { code: 'not_found', message: (e as Error).message, retryable: false };
  }
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  if (e instanceof RangeError && OUT_OF_MEMORY.test(e.message)) {
    return {
      code: 'resource_exhausted',
      message: `the engine could not allocate memory for the job: ${message}`,
      retryable: false,
      details: { what: 'allocation' },
    };
  }
  return { code: 'internal', message, retryable: true };
}
