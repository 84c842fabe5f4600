/**
 * Uploaded datasets: the arrays live on disk (`DATASET_DIR`, shared by api and workers), their
 * `DatasetMeta` in Redis under `keys.dataset(id)`. The worker reads a `data.datasetId` with `get`.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
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

export interface DatasetStore {
  /** Stores the arrays; returns the stored size in bytes. */
  put(id: string, data: DatasetInput): Promise<{ bytes: number }>;
  /** Throws `DatasetNotFoundError`. */
  get(id: string): Promise<DatasetInput>;
  exists(id: string): Promise<boolean>;
  remove(id: string): Promise<void>;
}

/** `<dir>/<id>.json`, written to a temporary file and renamed. */
export class FileDatasetStore implements DatasetStore {
  constructor(readonly dir: string) {}

  private path(id: string): string {
    assertSafeId('dataset id', id);
    return join(this.dir, `${id}.json`);
  }

  async put(id: string, data: DatasetInput): Promise<{ bytes: number }> {
    const final = this.path(id);
    await mkdir(this.dir, { recursive: true });
    const body = JSON.stringify({ x: data.x, y: data.y, lengths: data.lengths });
    const tmp = join(this.dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, body);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    return { bytes: Buffer.byteLength(body) };
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
