/**
 * Uploaded datasets: the arrays live in the dataset store (opened by `openDatasetStore`, stores.ts,
 * from `DATASET_DIR`, shared by api and workers), their `DatasetMeta` in Redis under
 * `keys.dataset(id)`. The api writes with `put` (whole arrays, or rows as they are parsed, so an
 * upload need not be held in memory); the worker reads a `data.datasetId` with `get`.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
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
}

/** The rows of arrays held in memory. */
export function* datasetRows(data: Pick<DatasetInput, 'x' | 'y' | 'lengths'>): Iterable<DatasetRow> {
  for (let i = 0; i < data.x.length; i++) {
    yield data.lengths ? { x: data.x[i], y: data.y[i], length: data.lengths[i] } : { x: data.x[i], y: data.y[i] };
  }
}

export function isRows(data: DatasetInput | DatasetRows): data is DatasetRows {
  return Symbol.asyncIterator in data || Symbol.iterator in data;
}

/**
 * Row `n` of a set being written: a length on every row or on none. `withLengths` is what row 0
 * said (undefined before it); returns it for the next row.
 */
export function checkDatasetRow(row: DatasetRow, n: number, withLengths: boolean | undefined): boolean {
  const has = row.length !== undefined;
  if (withLengths !== undefined && has !== withLengths) {
    throw new Error(`dataset rows: expected a length on every row or on none, row ${n} differs from row 0`);
  }
  return has;
}

/** `<dir>/<id>.json` (`{ x, y, lengths? }`), written row by row to a temporary file and renamed. */
export class FileDatasetStore implements DatasetStore {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    assertSafeId('dataset id', id);
    return join(this.dir, `${id}.json`);
  }

  async put(id: string, data: DatasetInput | DatasetRows): Promise<{ bytes: number }> {
    const final = this.path(id);
    await mkdir(this.dir, { recursive: true });
    const tmp = join(this.dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const bytes = await writeRowsAsJson(tmp, isRows(data) ? data : datasetRows(data));
      await rename(tmp, final);
      return { bytes };
    } finally {
      await rm(tmp, { force: true });
      await rm(`${tmp}.y`, { force: true });
    }
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
}

/**
 * Writes `{"x":[...],"y":[...],"lengths":[...]}` to `file` holding one row at a time: `x` goes
 * straight to the file, `y` to `<file>.y` and is appended after; only the lengths stay in memory.
 */
async function writeRowsAsJson(file: string, rows: DatasetRows): Promise<number> {
  const out = await open(file, 'w');
  const ys = await open(`${file}.y`, 'w');
  let bytes = 0;
  const write = async (h: FileHandle, s: string) => void (bytes += (await h.write(s)).bytesWritten);
  try {
    const lengths: number[] = [];
    let n = 0;
    let withLengths: boolean | undefined;
    await write(out, '{"x":[');
    for await (const row of rows) {
      withLengths = checkDatasetRow(row, n, withLengths);
      const sep = n === 0 ? '' : ',';
      await write(out, sep + JSON.stringify(row.x));
      await write(ys, sep + JSON.stringify(row.y));
      if (row.length !== undefined) lengths.push(row.length);
      n++;
    }
    await write(out, '],"y":[');
    await ys.close();
    for await (const chunk of createReadStream(`${file}.y`)) await out.write(chunk as Buffer);
    await write(out, `]${lengths.length ? `,"lengths":${JSON.stringify(lengths)}` : ''}}`);
    return bytes;
  } finally {
    await out.close();
    await ys.close().catch(() => undefined);
  }
}
