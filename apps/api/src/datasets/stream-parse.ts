/**
 * The JSON form of a dataset upload (`{ x, y, lengths?, description? }`) parsed as a stream: the
 * numbers go to a `DatasetWriter` row by row as they arrive and are checked on the way, so the
 * memory of an upload is a few rows, whatever the body's size. The checks and their issues are
 * those of `contract.DatasetInput` (field, expected, received), plus float32 range; the first issue
 * in the arrays stops the parse.
 */
import { z } from 'zod';
import {
  FLOAT32_EXPECTED,
  describeValue,
  fitsFloat32,
  formatPath,
  numel,
  showShape,
  validate,
  type DatasetField,
  type DatasetWriter,
  type JobContract,
  type Path,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import { JsonTokenizer, type JsonTokenHandler } from './json-tokens';

/** What the metadata of a stored dataset is made from. */
export interface DatasetSummary {
  samples: number;
  seqLen: number;
  inputSize: number;
  targetShape: number[];
  hasLengths: boolean;
  description?: string;
}

export type ParsedUpload = { ok: true; value: DatasetSummary } | { ok: false; issues: ValidationIssue[] };

/** Thrown out of the tokenizer's handler to stop at the first issue in the arrays. */
class StopParse extends Error {
  constructor(readonly issue: ValidationIssue) {
    super(issue.message);
  }
}

/** Numbers of one row kept before they are handed on (a `lengths` array is one long row). */
const ROW_CHUNK = 4096;

function typeIssue(path: Path, expected: string, v: unknown): ValidationIssue {
  const kind = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return {
    path: formatPath(path),
    code: 'invalid_type',
    message: `Invalid input: expected ${expected}, received ${kind}`,
    expected,
    received: describeValue(v),
  };
}

function float32Issue(v: number, path: Path): ValidationIssue {
  return shapeIssue(path, FLOAT32_EXPECTED, String(v));
}

function shapeIssue(path: Path, expected: string, received: string): ValidationIssue {
  return {
    path: formatPath(path),
    code: 'custom',
    message: `expected ${expected}, received ${received}`,
    expected,
    received,
  };
}

/**
 * Checks one array field as it streams (rectangular, numbers at the right depth, each number by
 * `checkNumber`) and hands its innermost rows to the writer. The shape is read along the first
 * element of every level, as `rectangularShape` does.
 */
class TensorTracker {
  /** Sizes learned from the first element of each level, down to the first number or empty array. */
  private readonly sizes: number[] = [];
  /** How many levels `sizes` has: known at the first number or the first empty array. */
  private levels = -1;
  private readonly counts: number[] = [];
  private row: number[] = [];
  /** Inside an element of the wrong type: its nesting, and how many children it has (for the issue). */
  private skipDepth = 0;
  private skipChildren = 0;
  private skipIssue: ((length: number) => ValidationIssue) | null = null;
  done = false;

  constructor(
    readonly field: DatasetField,
    /** Depth of the numbers (x 3, lengths 1); null: y, 2 or 3 by its first number. */
    private rank: number | null,
    private readonly writer: DatasetWriter,
    /** The check on every number (a hot path), and the issue when it fails. */
    private readonly accepts: (v: number) => boolean,
    private readonly refusal: (v: number, path: Path) => ValidationIssue,
  ) {}

  /** The shape as `rectangularShape` reads it. */
  get shape(): number[] {
    return this.sizes.slice(0, Math.max(0, this.levels));
  }

  private path(depth: number): Path {
    return [this.field, ...this.counts.slice(0, depth).map((c) => c - 1)];
  }

  /** What belongs at depth d: 'array' above the numbers, 'number' at their depth. */
  private expectedAt(d: number): 'array' | 'number' | 'union' {
    if (this.rank !== null) return d < this.rank ? 'array' : 'number';
    if (d < 2) return 'array';
    return d === 2 ? 'union' : 'number';
  }

  private wrongType(d: number, v: unknown): ValidationIssue {
    const want = this.expectedAt(d);
    const path = this.path(d);
    if (want === 'union')
      return {
        path: formatPath(path),
        code: 'invalid_union',
        message: 'Invalid input',
        expected: 'one of the allowed forms',
        received: describeValue(v),
      };
    // y of mixed depths passes the types and fails the shape check.
    if (this.field === 'y' && d === 2) {
      return Array.isArray(v)
        ? shapeIssue(path, 'a number', describeValue(v))
        : shapeIssue(path, `an array of length ${this.sizes[2]}`, typeof v);
    }
    return typeIssue(path, want, v);
  }

  private startSkip(d: number, kind: 'array' | 'object'): void {
    this.skipDepth = 1;
    this.skipChildren = 0;
    this.skipIssue = (length) => this.wrongType(d, kind === 'array' ? new Array(length) : {});
  }

  openArray(): void {
    if (this.skipDepth > 0) {
      if (this.skipDepth++ === 1) this.skipChildren++;
      return;
    }
    const d = this.counts.length;
    if (d > 0) this.counts[d - 1]++;
    if (d > 0 && this.expectedAt(d) === 'number') return this.startSkip(d, 'array');
    this.counts.push(0);
  }

  openObject(): void {
    if (this.skipDepth > 0) {
      if (this.skipDepth++ === 1) this.skipChildren++;
      return;
    }
    const d = this.counts.length;
    if (d === 0) throw new StopParse(typeIssue([this.field], 'array', {}));
    this.counts[d - 1]++;
    this.startSkip(d, 'object');
  }

  closeObject(): void {
    this.closeSkipped();
  }

  closeArray(): void {
    if (this.skipDepth > 0) return this.closeSkipped();
    const d = this.counts.length - 1;
    const n = this.counts[d];
    if (this.rank !== null && d === this.rank - 1) {
      this.writer.append(this.field, this.rowIndex(), this.row);
      this.row = [];
    }
    if (this.levels < 0 && n === 0) this.levels = d + 1;
    if (d < this.levels && this.sizes[d] === undefined) this.sizes[d] = n;
    else if (d < this.levels && n !== this.sizes[d]) {
      throw new StopParse(shapeIssue(this.path(d), `an array of length ${this.sizes[d]}`, `length ${n}`));
    }
    this.counts.pop();
    if (d === 0) this.done = true;
  }

  private closeSkipped(): void {
    if (--this.skipDepth === 0) throw new StopParse(this.skipIssue!(this.skipChildren));
  }

  value(v: string | number | boolean | null): void {
    if (this.skipDepth > 0) {
      if (this.skipDepth === 1) this.skipChildren++;
      return;
    }
    const d = this.counts.length;
    if (d === 0) throw new StopParse(typeIssue([this.field], 'array', v));
    this.counts[d - 1]++;
    if (typeof v !== 'number') throw new StopParse(this.wrongType(d, v));
    if (this.rank === null && d >= 2) this.rank = d;
    if (this.levels < 0) this.levels = d;
    if (this.expectedAt(d) !== 'number') throw new StopParse(this.wrongType(d, v));
    if (!this.accepts(v)) throw new StopParse(this.refusal(v, this.path(d)));
    this.row.push(v);
    if (this.row.length >= ROW_CHUNK) {
      this.writer.append(this.field, this.rowIndex(), this.row);
      this.row = [];
    }
  }

  private rowIndex(): number[] {
    return this.counts.slice(0, this.counts.length - 1).map((c) => c - 1);
  }
}

/** `obj[key] = v` as JSON.parse does it: `__proto__` is an own field, not the prototype. */
function setOwn(obj: Record<string, unknown>, key: string, v: unknown): void {
  Object.defineProperty(obj, key, { value: v, enumerable: true, writable: true, configurable: true });
}

/** The non-array fields (`description`, unknown keys): built as values, small by the token cap. */
class ValueBuilder {
  private readonly stack: Array<unknown[] | Record<string, unknown>> = [];
  private key = '';
  private readonly keys: string[] = [];
  result: unknown = undefined;
  done = false;

  private put(v: unknown): void {
    const top = this.stack[this.stack.length - 1];
    if (!top) {
      this.result = v;
      this.done = true;
    } else if (Array.isArray(top)) top.push(v);
    else setOwn(top, this.keys[this.keys.length - 1], v);
  }

  open(v: unknown[] | Record<string, unknown>): void {
    this.put(v);
    this.done = false;
    this.stack.push(v);
    this.keys.push(this.key);
  }

  close(): void {
    this.stack.pop();
    this.keys.pop();
    if (this.stack.length === 0) this.done = true;
  }

  setKey(k: string): void {
    this.keys[this.keys.length - 1] = k;
    this.key = k;
  }

  value(v: unknown): void {
    this.put(v);
  }
}

const STREAMED: Record<DatasetField, number | null> = { x: 3, y: null, lengths: 1 };
const isStreamed = (k: string): k is DatasetField => Object.prototype.hasOwnProperty.call(STREAMED, k);

/**
 * Feed it the body's text with `write`, then call `finish`. `issue` is set (and the parse stops)
 * at the first issue in the arrays; the caller stops reading then.
 */
export class JsonDatasetParser implements JsonTokenHandler {
  private readonly tokens: JsonTokenizer;
  private readonly trackers = new Map<DatasetField, TensorTracker>();
  private readonly others = new Map<string, ValueBuilder>();
  private current: TensorTracker | ValueBuilder | null = null;
  private sawTop = false;
  issue: ValidationIssue | null = null;

  constructor(
    private readonly contract: JobContract,
    private readonly writer: DatasetWriter,
  ) {
    this.tokens = new JsonTokenizer(this);
  }

  /** Throws `JsonSyntaxError` for text that is not JSON. */
  write(text: string): void {
    if (this.issue) return;
    try {
      this.tokens.write(text);
    } catch (e) {
      if (!(e instanceof StopParse)) throw e;
      this.issue = e.issue;
    }
  }

  finish(): ParsedUpload {
    if (!this.issue) {
      try {
        this.tokens.end();
      } catch (e) {
        if (!(e instanceof StopParse)) throw e;
        this.issue = e.issue;
      }
    }
    return this.issue ? { ok: false, issues: [this.issue] } : this.summarize();
  }

  private lengthElement(): z.ZodType {
    const lengths = this.contract.DatasetInput.shape.lengths as z.ZodOptional<z.ZodArray<z.ZodType>>;
    return lengths.unwrap().element;
  }

  private tracker(field: DatasetField): TensorTracker {
    if (field !== 'lengths') return new TensorTracker(field, STREAMED[field], this.writer, fitsFloat32, float32Issue);
    const element = this.lengthElement();
    return new TensorTracker(
      field,
      1,
      this.writer,
      (v) => element.safeParse(v).success,
      (v, path) => {
        const r = validate(element, v);
        return { ...(r.ok ? { code: 'custom', message: 'invalid length' } : r.issues[0]), path: formatPath(path) };
      },
    );
  }

  openObject(): void {
    if (this.current) return this.current instanceof TensorTracker ? this.current.openObject() : this.current.open({});
    if (this.sawTop) return;
    this.sawTop = true;
  }

  closeObject(): void {
    if (!this.current) return;
    if (this.current instanceof TensorTracker) this.current.closeObject();
    else this.current.close();
    this.settle();
  }

  openArray(): void {
    if (this.current) return this.current instanceof TensorTracker ? this.current.openArray() : this.current.open([]);
    this.topLevelNotObject([]);
  }

  closeArray(): void {
    if (!this.current) return;
    if (this.current instanceof TensorTracker) this.current.closeArray();
    else this.current.close();
    this.settle();
  }

  key(name: string): void {
    if (this.current instanceof ValueBuilder) return this.current.setKey(name);
    if (this.current) return; // inside a skipped object of an array field
    if (isStreamed(name)) {
      if (this.trackers.has(name))
        throw new StopParse({
          path: name,
          code: 'duplicate_key',
          message: `field "${name}" appears twice`,
          expected: 'each field once',
          received: 'a second one',
        });
      const t = this.tracker(name);
      this.trackers.set(name, t);
      this.current = t;
    } else {
      const b = new ValueBuilder();
      this.others.set(name, b);
      this.current = b;
    }
  }

  value(v: string | number | boolean | null): void {
    if (!this.current) return this.topLevelNotObject(v);
    this.current.value(v);
    this.settle();
  }

  private topLevelNotObject(v: unknown): never {
    throw new StopParse(typeIssue([], 'object', v));
  }

  /** The field's value is complete: back to the top-level object. */
  private settle(): void {
    if (this.current?.done) this.current = null;
  }

  /** The checks of `DatasetInput` that need the whole shape, in its order. */
  private summarize(): ParsedUpload {
    // The object-level checks (missing fields, unknown keys, description) on a stand-in whose arrays are empty.
    const standIn: Record<string, unknown> = {};
    for (const [k, b] of this.others) setOwn(standIn, k, b.result);
    for (const k of this.trackers.keys()) standIn[k] = [];
    const envelope = validate(z.strictObject(this.contract.DatasetInput.shape), standIn);
    if (!envelope.ok) return envelope;
    const limits = this.contract.limits;
    const issues: ValidationIssue[] = [];
    const xShape = this.trackers.get('x')!.shape;
    const xBad = checkShape(['x'], xShape, [null, null, null], ['N', 'T', 'I'], limits.maxInlineElements);
    if (xBad) return { ok: false, issues: [xBad] };
    const [n, t, i] = xShape;
    const at = (expected: string, received: number) => issues.push(shapeIssue(['x'], expected, String(received)));
    if (n > limits.maxSamples) at(`at most ${limits.maxSamples} samples`, n);
    if (t > limits.maxSeqLen) at(`sequences of at most ${limits.maxSeqLen} steps`, t);
    if (i > limits.maxInputSize) at(`at most ${limits.maxInputSize} features`, i);
    const yShape = this.trackers.get('y')!.shape;
    const perStep = yShape.length === 3;
    const yBad = checkShape(
      ['y'],
      yShape,
      perStep ? [n, t, null] : [n, null],
      perStep ? ['N', 'T', 'O'] : ['N', 'O'],
      limits.maxInlineElements,
    );
    if (yBad) issues.push(yBad);
    const lengths = this.trackers.get('lengths');
    if (lengths && lengths.shape[0] !== n)
      issues.push(shapeIssue(['lengths'], `${n} lengths (one per sample)`, `${lengths.shape[0]}`));
    if (lengths && lengths.shape[0] === n && this.longest && this.longest.value > t) {
      const first = this.longestOver(t)!;
      issues.push(shapeIssue(['lengths', first.index], `a length <= ${t} (the sequence length)`, String(first.value)));
    }
    if (issues.length) return { ok: false, issues };
    const description = this.others.get('description')?.result as string | undefined;
    return {
      ok: true,
      value: {
        samples: n,
        seqLen: t,
        inputSize: i,
        targetShape: yShape,
        hasLengths: !!lengths,
        ...(description !== undefined ? { description } : {}),
      },
    };
  }

  private get longest(): { index: number; value: number } | undefined {
    return this.lengthRecords[this.lengthRecords.length - 1];
  }

  /** The first length over `t`: the first record of a running maximum past it. */
  private longestOver(t: number): { index: number; value: number } | undefined {
    return this.lengthRecords.find((r) => r.value > t);
  }

  /**
   * Each length that is longer than every one before it, with its index: enough to name the first
   * length over T once T is known (the fields may come in any order). At most `maxSeqLen` entries.
   */
  private readonly lengthRecords: Array<{ index: number; value: number }> = [];

  /** Called by the writer wrapper for every row of `lengths`. */
  noteLengths(values: readonly number[] | Float64Array, offset: number): void {
    values.forEach((value, k) => {
      if (value > (this.longest?.value ?? 0)) this.lengthRecords.push({ index: offset + k, value });
    });
  }
}

/** `expectShape` of the payload schemas, on a shape read from the stream. */
function checkShape(
  path: Path,
  shape: number[],
  dims: Array<number | null>,
  names: string[],
  maxElements: number,
): ValidationIssue | null {
  const want = dims.map((d, i) => (d === null ? names[i] : d));
  if (shape.length !== dims.length || shape.some((s, i) => s === 0 || (dims[i] !== null && s !== dims[i]))) {
    return shapeIssue(path, `shape ${showShape(want)}`, `shape ${showShape(shape)}`);
  }
  if (numel(shape) > maxElements) return shapeIssue(path, `at most ${maxElements} numbers`, `${numel(shape)}`);
  return null;
}

/**
 * Parses a JSON dataset upload from its text chunks into `writer`. Stops reading at the first
 * issue in the arrays. Throws `JsonSyntaxError` for a body that is not JSON.
 */
export async function parseJsonUpload(
  chunks: AsyncIterable<string>,
  contract: JobContract,
  writer: DatasetWriter,
): Promise<ParsedUpload> {
  let offset = 0;
  const tap: DatasetWriter = {
    append: (field, index, values) => {
      if (field === 'lengths') {
        parser.noteLengths(values, offset);
        offset += values.length;
      }
      writer.append(field, index, values);
    },
    flush: () => writer.flush(),
    commit: () => writer.commit(),
    abort: () => writer.abort(),
  };
  const parser = new JsonDatasetParser(contract, tap);
  for await (const text of chunks) {
    parser.write(text);
    if (parser.issue) break;
    await writer.flush();
  }
  return parser.finish();
}
