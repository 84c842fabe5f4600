/**
 * Errors of the client. Both validation errors, the local one and the server's 400, carry the same
 * `issues` (one `ValidationIssue` per bad field, from `@relu-lstm/jobs`), so callers handle them alike.
 */
import type { ApiErrorCode, JobError, JobState, JobView, ValidationIssue } from '@relu-lstm/jobs';

function listIssues(issues: readonly ValidationIssue[]): string {
  const shown = issues.slice(0, 5).map((i) => `${i.path || '(body)'}: ${i.message}`);
  if (issues.length > 5) shown.push(`${issues.length - 5} more`);
  return shown.join('; ');
}

/** A payload failed the shared zod schema before anything was sent or queued. */
export class PayloadValidationError extends Error {
  override readonly name = 'PayloadValidationError';
  readonly code = 'invalid_request';
  constructor(
    /** What was validated: `train payload`, `infer payload`, `dataset`. */
    readonly what: string,
    readonly issues: ValidationIssue[],
  ) {
    super(`invalid ${what}: ${listIssues(issues)}`);
  }
  /** Paths of the bad fields, e.g. `['training.epochs']`. */
  get fields(): string[] {
    return this.issues.map((i) => i.path);
  }
}

/** The server answered with a non-2xx status. `code` and `issues` come from its error body. */
export class RunnerApiError extends Error {
  override readonly name = 'RunnerApiError';
  constructor(
    readonly status: number,
    /** The body's `error.code` (`invalid_request`, `not_found`...), or `http_<status>` without one. */
    readonly code: ApiErrorCode | `http_${number}`,
    /** The body's `error.message`. */
    readonly detail: string,
    /** Each bad field of a 400; empty otherwise. */
    readonly issues: ValidationIssue[] = [],
    /** `METHOD path` of the request. */
    readonly request = '',
    /** From `Retry-After` (429 `rate_limited` / `quota_exceeded` of streams, 503): when to try again; null without one. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(
      `${request ? `${request}: ` : ''}${status} ${code}: ${detail}${issues.length ? ` (${listIssues(issues)})` : ''}`,
    );
  }
  get fields(): string[] {
    return this.issues.map((i) => i.path);
  }
}

/** No HTTP answer: connection refused or reset, DNS failure, or no response headers in `timeoutMs`. */
export class RunnerConnectionError extends Error {
  override readonly name = 'RunnerConnectionError';
  constructor(
    message: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** `waitForResult`: the job ended `failed` or `cancelled`. */
export class JobFailedError extends Error {
  override readonly name = 'JobFailedError';
  constructor(
    readonly jobId: string,
    readonly state: Extract<JobState, 'failed' | 'cancelled'>,
    /** The job's error (`code`: `diverged`, `cancelled`, ...), when it has one. */
    readonly error: JobError | null,
    readonly job: JobView | null,
  ) {
    super(`job ${jobId} ${state}${error ? `: ${error.code}: ${error.message}` : ''}`);
  }
}

/** `waitForResult`: the job did not end within `timeoutMs`. The job itself goes on. */
export class WaitTimeoutError extends Error {
  override readonly name = 'WaitTimeoutError';
  constructor(
    readonly jobId: string,
    readonly timeoutMs: number,
    /** The last state seen. */
    readonly lastState: JobState | null,
  ) {
    super(`job ${jobId} did not finish within ${timeoutMs} ms (last state: ${lastState ?? 'unknown'})`);
  }
}
