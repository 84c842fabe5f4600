/**
 * A step's inputs that do not fit the session's state: the api answers 400 naming `inputs`, with the
 * reply's `expected` and `received` (a `failed` reply of code `invalid_payload`).
 */
export class StepInputError extends Error {
  readonly issue: { code: 'invalid_payload'; message: string; expected: string; received: string };

  constructor(o: { message: string; expected: string; received: string }) {
    super(o.message);
    this.name = 'StepInputError';
    this.issue = { code: 'invalid_payload', ...o };
  }
}
