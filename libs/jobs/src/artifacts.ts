/**
 * Where jobs put their files (`model.safetensors`, `state.json`, `metrics.csv`, `config.json`,
 * checkpoints). The api, the worker and its engine only see the `ArtifactStore` interface, opened
 * by `openArtifactStore` (stores.ts) from `ARTIFACT_DIR`. What every store must do is written down
 * as a test suite (`describeArtifactStoreContract`, libs/jobs/test/artifact-store-contract.ts):
 *   - a reader never sees half an artifact: `put` replaces one whole or not at all;
 *   - fencing (a worker that lost its job's lock must not write): a store cannot check a lock token
 *     itself, so it offers two hooks and the worker supplies the Redis side:
 *     - `put(..., { fence })`: `fence()` is asked after the bytes are uploaded and just before they
 *       replace the artifact; `false` discards them and throws `FencedWriteError`;
 *     - `stage` / `publishStaged` / `discardStaged`: a whole set is written privately under a stage
 *       id first; once one stage has been chosen (atomically, in Redis), any process may publish it.
 *       Publishing is idempotent: a staged file already gone was published by another publisher of
 *       the same stage (a stage is removed only after all its files are in place), so every final
 *       artifact holds the chosen stage's bytes whoever publishes it.
 *
 * `FileArtifactStore` keeps `<dir>/<jobId>/<name>` (a volume shared by all processes in
 * docker-compose), writing each file to a temporary name and renaming it; stages are `.stage-<id>`
 * directories whose files are renamed into place.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SAFE_ID, assertSafeId } from './keys';

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

/** A job with something in the store (artifacts, stages, leftovers of killed writers). */
export interface StoredJob {
  jobId: string;
  /** When anything of the job last changed (ms since the epoch). */
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

/** Thrown by a fenced `put` whose fence said no: nothing was written. */
export class FencedWriteError extends Error {
  readonly code = 'fenced';
  constructor(
    readonly jobId: string,
    readonly artifact: string,
  ) {
    super(`artifact ${artifact} of job ${jobId} not written: this writer no longer holds the job`);
    this.name = 'FencedWriteError';
  }
}

export interface PutOptions {
  /** Asked after the bytes are written and just before they replace the artifact; false: discard. */
  fence?: () => Promise<boolean>;
}

export interface ArtifactStore {
  /** Writes (or atomically replaces) one artifact; with a `fence`, only if it still says yes. */
  put(jobId: string, name: string, data: string | Uint8Array, options?: PutOptions): Promise<ArtifactInfo>;
  /** Writes one file of the private set `stageId` (not visible as an artifact). */
  stage(jobId: string, stageId: string, name: string, data: string | Uint8Array): Promise<void>;
  /**
   * Moves the staged files `names` of `stageId` into place, then removes the stage. A file already
   * moved (by another process publishing the same stage) is skipped; returns how many this call moved.
   */
  publishStaged(jobId: string, stageId: string, names: readonly string[]): Promise<number>;
  /** Removes a stage that will not be published. */
  discardStaged(jobId: string, stageId: string): Promise<void>;
  /** Whole content; throws `ArtifactNotFoundError`. */
  get(jobId: string, name: string): Promise<Buffer>;
  /** Size and a stream of the content, for downloads; throws `ArtifactNotFoundError`. */
  open(jobId: string, name: string): Promise<{ info: ArtifactInfo; stream: NodeJS.ReadableStream }>;
  exists(jobId: string, name: string): Promise<boolean>;
  /** The job's artifacts sorted by name; empty when it has none. */
  list(jobId: string): Promise<ArtifactInfo[]>;
  /** Every job with something stored, in no particular order (retention finds orphans with it). */
  jobs(): AsyncIterable<StoredJob>;
  /**
   * Removes one artifact, or everything of the job (artifacts, stages, leftovers) when `name` is
   * omitted. Missing ones are ignored.
   */
  remove(jobId: string, name?: string): Promise<void>;
}

function check(jobId: string, name?: string): void {
  assertSafeId('job id', jobId);
  if (name !== undefined && !isValidArtifactName(name)) {
    throw new Error(`artifact name: expected ${ARTIFACT_NAME}, got ${JSON.stringify(name)}`);
  }
}

/** Stage ids: one path segment (the worker uses a hash of the job's lock token). */
const STAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;

const isEnoent = (e: unknown) => (e as NodeJS.ErrnoException)?.code === 'ENOENT';

export class FileArtifactStore implements ArtifactStore {
  constructor(readonly dir: string) {}

  private path(jobId: string, name?: string): string {
    check(jobId, name);
    return name === undefined ? join(this.dir, jobId) : join(this.dir, jobId, name);
  }

  private stagePath(jobId: string, stageId: string, name?: string): string {
    check(jobId, name);
    if (!STAGE_ID.test(stageId)) throw new Error(`stage id: expected ${STAGE_ID}, got ${JSON.stringify(stageId)}`);
    const dir = join(this.dir, jobId, `.stage-${stageId}`);
    return name === undefined ? dir : join(dir, name);
  }

  async put(jobId: string, name: string, data: string | Uint8Array, options: PutOptions = {}): Promise<ArtifactInfo> {
    const final = this.path(jobId, name);
    await mkdir(this.path(jobId), { recursive: true });
    const tmp = join(this.path(jobId), `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, data);
      if (options.fence && !(await options.fence())) throw new FencedWriteError(jobId, name);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const s = await stat(final);
    return { name, size: s.size, modifiedAt: Math.round(s.mtimeMs) };
  }

  async stage(jobId: string, stageId: string, name: string, data: string | Uint8Array): Promise<void> {
    await mkdir(this.stagePath(jobId, stageId), { recursive: true });
    await writeFile(this.stagePath(jobId, stageId, name), data);
  }

  async publishStaged(jobId: string, stageId: string, names: readonly string[]): Promise<number> {
    let moved = 0;
    for (const name of names) {
      try {
        await rename(this.stagePath(jobId, stageId, name), this.path(jobId, name));
        moved++;
      } catch (e) {
        if (!isEnoent(e)) throw e; // ENOENT: moved already by another publisher of this stage
      }
    }
    await this.discardStaged(jobId, stageId);
    await this.removeHiddenLeftovers(jobId);
    return moved;
  }

  /**
   * The job's set is final once published: what a killed writer left behind (a `put`'s temporary,
   * another attempt's half-written stage; its `rm` never ran) goes too. Such a writer no longer
   * holds the job, so nothing live is lost; a stale one still running finds its file gone and fails.
   */
  private async removeHiddenLeftovers(jobId: string): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.path(jobId));
    } catch (e) {
      if (isEnoent(e)) return;
      throw e;
    }
    const hidden = names.filter((n) => n.startsWith('.stage-') || (n.startsWith('.') && n.endsWith('.tmp')));
    await Promise.all(hidden.map((n) => rm(join(this.path(jobId), n), { recursive: true, force: true })));
  }

  async discardStaged(jobId: string, stageId: string): Promise<void> {
    await rm(this.stagePath(jobId, stageId), { recursive: true, force: true });
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

  async *jobs(): AsyncIterable<StoredJob> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isEnoent(e)) return;
      throw e;
    }
    for (const jobId of names.filter((n) => SAFE_ID.test(n))) {
      try {
        // Every write ends in a rename into the job's directory, which updates its mtime.
        const s = await stat(join(this.dir, jobId));
        if (s.isDirectory()) yield { jobId, modifiedAt: s.mtimeMs };
      } catch (e) {
        if (!isEnoent(e)) throw e; // removed while listing
      }
    }
  }

  async remove(jobId: string, name?: string): Promise<void> {
    await rm(this.path(jobId, name), { recursive: name === undefined, force: true });
  }
}
