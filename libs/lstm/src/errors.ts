/**
 * Typed errors of the library. Every error says what was expected and what came, so a caller (or the
 * job runner, which turns them into job failures) can show it as is.
 */
export class ReluLstmError extends Error {
  constructor(
    /** Stable machine-readable reason, e.g. `invalid_config`, `invalid_input`, `diverged`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A constructor option or training setting is out of its domain. */
export class LstmConfigError extends ReluLstmError {
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly actual: unknown,
  ) {
    super('invalid_config', `${field}: expected ${expected}, got ${describe(actual)}`);
  }
}

/** A tensor given to the model has the wrong rank, size, dtype or non-finite values. */
export class LstmInputError extends ReluLstmError {
  constructor(
    readonly field: string,
    readonly expected: string,
    readonly actual: unknown,
  ) {
    // `actual` is either a value (described) or already a description such as "shape [2,3]".
    super(
      'invalid_input',
      `${field}: expected ${expected}, got ${typeof actual === 'string' ? actual : describe(actual)}`,
    );
  }
}

/** A state dict (or Keras weight list) is missing an entry, has an extra one, or a misshapen one. */
export class StateDictError extends ReluLstmError {
  constructor(
    readonly entry: string,
    message: string,
  ) {
    super('invalid_state_dict', `${entry}: ${message}`);
  }
}

/** A safetensors buffer could not be parsed or holds something this library cannot represent. */
export class SafetensorsError extends ReluLstmError {
  constructor(message: string) {
    super('invalid_safetensors', message);
  }
}

/** The requested backend is not installed or failed to initialise. */
export class BackendError extends ReluLstmError {
  constructor(message: string) {
    super('backend_unavailable', message);
  }
}

/**
 * Training produced a non-finite loss or gradient; `epoch` and `step` say where (both 0-based).
 * (`weights`: a caller's own check found a non-finite weight or optimizer slot after an update.)
 */
export class DivergenceError extends ReluLstmError {
  constructor(
    readonly epoch: number,
    readonly step: number,
    readonly quantity: 'loss' | 'gradient' | 'weights',
    readonly value: number,
  ) {
    super(
      'diverged',
      `training diverged at epoch ${epoch}, step ${step}: ${quantity === 'weights' ? 'a weight' : quantity} is ${value}`,
    );
  }
}

/** Training was stopped through its AbortSignal between two batches. */
export class TrainingAbortedError extends ReluLstmError {
  constructor(
    readonly epoch: number,
    readonly step: number,
  ) {
    super('aborted', `training aborted before epoch ${epoch}, step ${step}`);
  }
}

/** Short human description of a value for error messages: shapes for arrays, JSON for small values. */
export function describe(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) {
    const shape: number[] = [];
    let cur: unknown = value;
    while (Array.isArray(cur)) {
      shape.push(cur.length);
      cur = cur[0];
    }
    return `an array of shape [${shape.join(', ')}]`;
  }
  if (ArrayBuffer.isView(value))
    return `${value.constructor.name} of length ${(value as unknown as ArrayLike<number>).length}`;
  try {
    const s = JSON.stringify(value);
    return s.length > 120 ? s.slice(0, 117) + '...' : s;
  } catch {
    return Object.prototype.toString.call(value);
  }
}
