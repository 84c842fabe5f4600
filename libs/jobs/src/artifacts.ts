/**
 * Where jobs put their files (`model.safetensors`, `state.json`, `metrics.csv`, `config.json`,
 * checkpoints). The api and the worker only see the `ArtifactStore` interface; the default
 * implementation writes under a directory shared by all processes (`ARTIFACT_DIR`, a volume in
 * docker-compose): `<dir>/<jobId>/<name>`, each file written to a temporary name and renamed, so a
 * reader never sees half a file.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertSafeId } from './keys';

/** Artifact names: one path segment of letters, digits, '.', '-', '_', starting with a letter or
 * digit (so no '..', no '/', no hidden or temporary files). */
export const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isValidArtifactName(name: string): boolean {
  return ARTIFACT_NAME.test(name) && !name.includes('..');
}

export interface ArtifactInfo {
  name: string;
  size: number;
  modifiedAt: number;
}

export class ArtifactNotFoundError extends Error {
  readonly code = 'not_found';
  constructor(
    readonly jobId: string,
    readonly artifact: string,
  ) {
    super(`artifact ${artifact} of job ${jobId} not found`);
    this.name = 'ArtifactNotFoundError';
  }
}

export interface ArtifactStore {
  /** Writes (or atomically replaces) one artifact. */
  put(jobId: string, name: string, data: string | Uint8Array): Promise<ArtifactInfo>;
  /** Whole content; throws `ArtifactNotFoundError`. */
  get(jobId: string, name: string): Promise<Buffer>;
  /** Size and a stream of the content, for downloads; throws `ArtifactNotFoundError`. */
  open(jobId: string, name: string): Promise<{ info: ArtifactInfo; stream: NodeJS.ReadableStream }>;
  exists(jobId: string, name: string): Promise<boolean>;
  /** The job's artifacts sorted by name; empty when it has none. */
  list(jobId: string): Promise<ArtifactInfo[]>;
  /** Removes one artifact, or all of the job's when `name` is omitted. Missing ones are ignored. */
  remove(jobId: string, name?: string): Promise<void>;
}

function check(jobId: string, name?: string): void {
  assertSafeId('job id', jobId);
  if (name !== undefined && !isValidArtifactName(name)) {
    throw new Error(`artifact name: expected ${ARTIFACT_NAME}, got ${JSON.stringify(name)}`);
  }
}

const isEnoent = (e: unknown) => (e as NodeJS.ErrnoException)?.code === 'ENOENT';

export class FileArtifactStore implements ArtifactStore {
  constructor(readonly dir: string) {}

  private path(jobId: string, name?: string): string {
    check(jobId, name);
    return name === undefined ? join(this.dir, jobId) : join(this.dir, jobId, name);
  }

  async put(jobId: string, name: string, data: string | Uint8Array): Promise<ArtifactInfo> {
    const final = this.path(jobId, name);
    await mkdir(this.path(jobId), { recursive: true });
    const tmp = join(this.path(jobId), `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, data);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const s = await stat(final);
    return { name, size: s.size, modifiedAt: Math.round(s.mtimeMs) };
  }

  async get(jobId: string, name: string): Promise<Buffer> {
    try {
      return await readFile(this.path(jobId, name));
    } catch (e) {
      if (isEnoent(e)) throw new ArtifactNotFoundError(jobId, name);
      throw e;
    }
  }

  async open(jobId: string, name: string): Promise<{ info: ArtifactInfo; stream: ReadStream }> {
    const p = this.path(jobId, name);
    try {
      const s = await stat(p);
      if (!s.isFile()) throw new ArtifactNotFoundError(jobId, name);
      return { info: { name, size: s.size, modifiedAt: Math.round(s.mtimeMs) }, stream: createReadStream(p) };
    } catch (e) {
      if (isEnoent(e)) throw new ArtifactNotFoundError(jobId, name);
      throw e;
    }
  }

  async exists(jobId: string, name: string): Promise<boolean> {
    try {
      return (await stat(this.path(jobId, name))).isFile();
    } catch (e) {
      if (isEnoent(e)) return false;
      throw e;
    }
  }

  async list(jobId: string): Promise<ArtifactInfo[]> {
    let names: string[];
    try {
      names = await readdir(this.path(jobId));
    } catch (e) {
      if (isEnoent(e)) return [];
      throw e;
    }
    const out: ArtifactInfo[] = [];
    for (const name of names.filter(isValidArtifactName).sort()) {
      try {
        const s = await stat(join(this.path(jobId), name));
        if (s.isFile()) out.push({ name, size: s.size, modifiedAt: Math.round(s.mtimeMs) });
      } catch (e) {
        if (!isEnoent(e)) throw e; // removed while listing
      }
    }
    return out;
  }

  async remove(jobId: string, name?: string): Promise<void> {
    await rm(this.path(jobId, name), { recursive: name === undefined, force: true });
  }
}
