/**
 * Uploaded datasets: the arrays live in the dataset store (opened by `openDatasetStore`, stores.ts,
 * from `DATASET_DIR`, shared by api and workers), their `DatasetMeta` in Redis under
 * `keys.dataset(id)`. The api writes with `put` (whole arrays, or rows as they are parsed, so an
 * upload need not be held in memory); the worker reads a `data.datasetId` with `get`.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { assertSafeId } from './keys';
import type { DatasetInput } from './payloads';

export class DatasetNotFoundError extends Error {
  readonly code = 'not_found';
  constructor(readonly datasetId: string) {
    super(`dataset ${datasetId} not found`);
    this.name = 'DatasetNotFoundError';
  }
}

/** One sample: `x` is `[T, I]`, `y` is `[T, O]` or `[O]`, `length` its valid steps (all rows or none). */
export interface DatasetRow {
  x: number[][];
  y: DatasetInput['y'][number];
  length?: number;
}

/** Rows as they arrive (e.g. from a streaming parser), or already in memory. */
export type DatasetRows = AsyncIterable<DatasetRow> | Iterable<DatasetRow>;

export interface DatasetStore {
  /**
   * Stores the arrays, whole or row by row (a stored set appears whole or not at all; a failed or
   * interrupted put leaves nothing visible); returns the stored size in bytes.
   */
  put(id: string, data: DatasetInput | DatasetRows): Promise<{ bytes: number }>;
  /** Throws `DatasetNotFoundError`. */
  get(id: string): Promise<DatasetInput>;
  exists(id: string): Promise<boolean>;
  remove(id: string): Promise<void>;
  /** Stores a dataset that arrives row by row (an upload parsed as a stream); see `DatasetWriter`. */
  writer(id: string): Promise<DatasetWriter>;
}

/** The arrays of a dataset: `x [N, T, I]`, `y [N, O]` or `[N, T, O]`, optional `lengths [N]`. */
export type DatasetField = 'x' | 'y' | 'lengths';

/**
 * Receives a dataset's numbers as innermost rows, in order, field by field (the fields may
 * interleave). `index` is the row's place in its field (`[n, t]` for a row of `x`, `[]` for
 * `lengths`); consecutive appends with the same index continue one row. Nothing is visible under
 * `id` before `commit`; `abort` drops what was written.
 */
export interface DatasetWriter {
  append(field: DatasetField, index: readonly number[], values: readonly number[] | Float64Array): void;
  /** Resolves once the buffered rows are written (call between chunks of the upload). */
  flush(): Promise<void>;
  commit(): Promise<{ bytes: number }>;
  abort(): Promise<void>;
}

/** The rows of arrays held in memory. */
export function* datasetRows(data: Pick<DatasetInput, 'x' | 'y' | 'lengths'>): Iterable<DatasetRow> {
  for (let i = 0; i < data.x.length; i++) {
    yield data.lengths ? { x: data.x[i], y: data.y[i], length: data.lengths[i] } : { x: data.x[i], y: data.y[i] };
  }
}

function isRows(data: DatasetInput | DatasetRows): data is DatasetRows {
  return Symbol.asyncIterator in data || Symbol.iterator in data;
}

/** `<dir>/<id>.json` (`{ x, y, lengths? }`), written row by row to a temporary file and renamed. */
export class FileDatasetStore implements DatasetStore {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    assertSafeId('dataset id', id);
    return join(this.dir, `${id}.json`);
  }

  async put(id: string, data: DatasetInput | DatasetRows): Promise<{ bytes: number }> {
    return putThroughWriter(await this.writer(id), data);
  }

  async get(id: string): Promise<DatasetInput> {
    try {
      return JSON.parse(await readFile(this.path(id), 'utf8')) as DatasetInput;
    } catch (e) {
      if ((e as NodeJS.ErrnoException)?.code === 'ENOENT') throw new DatasetNotFoundError(id);
      throw e;
    }
  }

  async exists(id: string): Promise<boolean> {
    try {
      return (await stat(this.path(id))).isFile();
    } catch {
      return false;
    }
  }

  async remove(id: string): Promise<void> {
    await rm(this.path(id), { force: true });
  }

  async writer(id: string): Promise<DatasetWriter> {
    const final = this.path(id);
    await mkdir(this.dir, { recursive: true });
    return new FileDatasetWriter(final, join(this.dir, `.${id}.${randomBytes(6).toString('hex')}`));
  }
}

/** What goes before field `f`, the `i`-th, in the stored `{"x":…,"y":…,"lengths":…}`. */
export const jsonFieldHead = (i: number, f: DatasetField): string => `${i === 0 ? '{' : ','}"${f}":`;

/**
 * The JSON array text of one field, built from its innermost rows as they come (see
 * `DatasetWriter.append`); `take` hands over what was built since the last take.
 */
export class JsonArrayText {
  private buf = '';
  private last: readonly number[] | null = null;
  private rowHasValues = false;

  append(index: readonly number[], values: readonly number[] | Float64Array): void {
    const prev = this.last;
    if (prev === null) {
      this.buf += '['.repeat(index.length + 1);
    } else {
      let k = 0;
      while (k < index.length && index[k] === prev[k]) k++;
      if (k < index.length) {
        const depth = index.length - k;
        this.buf += `${']'.repeat(depth)},${'['.repeat(depth)}`;
        this.rowHasValues = false;
      }
    }
    this.last = index.length === 0 ? index : [...index];
    if (values.length === 0) return;
    this.buf += (this.rowHasValues ? ',' : '') + values.join(',');
    this.rowHasValues = true;
  }

  /** Closes the open brackets (`[]` for a field without rows). */
  end(): void {
    this.buf += this.last === null ? '[]' : ']'.repeat(this.last.length + 1);
  }

  take(): string {
    const text = this.buf;
    this.buf = '';
    return text;
  }
}

/**
 * One field's JSON array text, written to a sink as rows come: a part file, or the body of an
 * object-store upload. `finished` settles when the sink has stored everything (or failed).
 */
export class JsonFieldPart {
  private readonly text = new JsonArrayText();
  bytes = 0;

  /** A write error, reported by the next flush (a sink destroyed by `abort` may still report one). */
  private failed: Error | null = null;

  constructor(
    private readonly sink: Writable,
    private readonly finished: Promise<unknown>,
  ) {
    sink.on('error', (e) => (this.failed ??= e));
    finished.catch((e: Error) => (this.failed ??= e));
  }

  append(index: readonly number[], values: readonly number[] | Float64Array): void {
    this.text.append(index, values);
  }

  /** Throws the write error the sink reported, if any. */
  private check(): void {
    if (this.failed) throw this.failed;
  }

  async flush(): Promise<void> {
    this.check();
    const text = this.text.take();
    if (!text) return;
    this.bytes += Buffer.byteLength(text);
    // Waits while the sink is full (or until it failed).
    if (!this.sink.write(text)) await Promise.race([once(this.sink, 'drain'), this.finished.catch(() => undefined)]);
    this.check();
  }

  async close(): Promise<void> {
    this.text.end();
    await this.flush();
    this.sink.end();
    await this.finished;
  }

  async abort(): Promise<void> {
    this.sink.destroy(new Error('dataset write aborted'));
    await this.finished.catch(() => undefined);
  }
}

/** A field part in a file of its own. */
function filePart(file: string): JsonFieldPart {
  const stream = createWriteStream(file);
  return new JsonFieldPart(stream, finished(stream));
}

/** Writes `{"x":...,"y":...,"lengths":...}` from the field parts into a temporary file, then renames it. */
class FileDatasetWriter implements DatasetWriter {
  private readonly parts = new Map<DatasetField, JsonFieldPart>();

  constructor(
    private readonly final: string,
    private readonly tmp: string,
  ) {}

  private file(field: DatasetField): string {
    return `${this.tmp}.${field}.part`;
  }

  private part(field: DatasetField): JsonFieldPart {
    let p = this.parts.get(field);
    if (!p) this.parts.set(field, (p = filePart(this.file(field))));
    return p;
  }

  append(field: DatasetField, index: readonly number[], values: readonly number[] | Float64Array): void {
    this.part(field).append(index, values);
  }

  async flush(): Promise<void> {
    for (const p of this.parts.values()) await p.flush();
  }

  async commit(): Promise<{ bytes: number }> {
    const fields = (['x', 'y', 'lengths'] as const).filter((f) => f !== 'lengths' || this.parts.has(f));
    for (const f of fields) await this.part(f).close();
    const out = createWriteStream(`${this.tmp}.json`);
    let bytes = 0;
    try {
      for (const [i, f] of fields.entries()) {
        const head = jsonFieldHead(i, f);
        out.write(head);
        bytes += head.length + this.part(f).bytes;
        await pipeline(createReadStream(this.file(f)), out, { end: false });
      }
      await new Promise<void>((resolve, reject) => out.end('}', (e?: Error | null) => (e ? reject(e) : resolve())));
      await rename(`${this.tmp}.json`, this.final);
    } catch (e) {
      out.destroy();
      await this.abort();
      throw e;
    }
    await this.removeParts();
    return { bytes: bytes + 1 };
  }

  async abort(): Promise<void> {
    for (const p of this.parts.values()) await p.abort();
    await this.removeParts();
    await rm(`${this.tmp}.json`, { force: true });
  }

  private async removeParts(): Promise<void> {
    await Promise.all([...this.parts.keys()].map((f) => rm(this.file(f), { force: true })));
  }
}

/**
 * Every store's `put`: the rows go through the store's own `DatasetWriter`, so arrays in memory,
 * rows from a parser and a streamed upload take one write path, and a failure leaves nothing.
 */
export async function putThroughWriter(w: DatasetWriter, data: DatasetInput | DatasetRows): Promise<{ bytes: number }> {
  try {
    let n = 0;
    let withLengths: boolean | null = null;
    for await (const row of isRows(data) ? data : datasetRows(data)) {
      const hasLength = row.length !== undefined;
      if (withLengths !== null && hasLength !== withLengths) {
        throw new Error(`dataset rows: expected a length on every row or on none, row ${n} differs from row 0`);
      }
      withLengths = hasLength;
      appendRow(w, n++, row);
      await w.flush();
    }
    return await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
}

function appendRow(w: DatasetWriter, n: number, row: DatasetRow): void {
  row.x.forEach((step, t) => w.append('x', [n, t], step));
  const y = row.y;
  if (isMatrix(y)) y.forEach((step, t) => w.append('y', [n, t], step));
  else w.append('y', [n], y as number[]);
  if (row.length !== undefined) w.append('lengths', [], [row.length]);
}

function isMatrix(y: DatasetRow['y']): y is number[][] {
  return Array.isArray(y[0]);
}
