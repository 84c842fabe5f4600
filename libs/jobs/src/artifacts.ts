/**
 * Where jobs put their files (`model.safetensors`, `state.json`, `metrics.csv`, `config.json`,
 * checkpoints). The api, the worker and its engine only see the `ArtifactStore` interface, opened
 * by `openArtifactStore` (stores.ts) from `ARTIFACT_DIR`. What every store must do is written down
 * as a test suite (`describeArtifactStoreContract`, libs/jobs/test/artifact-store-contract.ts):
 *   - a reader never sees half an artifact: `put` replaces one whole or not at all;
 *   - fencing (a worker that lost its job's lock must not write anything a reader sees): a store
 *     cannot check a lock token itself, so it offers two hooks and the worker supplies the Redis side:
 *     - `put(..., { fence })` (checkpoints): `fence()` is asked after the bytes are uploaded and just
 *       before they replace the artifact; `false` discards them and throws `FencedWriteError`;
 *     - `stage` (a finished job's set): every object is written under its attempt's stage id, where
 *       no reader looks. Publishing is not a store operation: one Lua step records which stage is
 *       the job's set while the lock is the attempt's (published-sets.ts), and every read resolves
 *       the job through that record (`PublishedSets`, given when the store is opened), so nothing is
 *       copied or renamed and a fenced-off attempt's stage is never seen. `pruneStages` then removes
 *       the other stages; what a killed attempt leaves goes with the job (`remove`).
 * The store on a file system is file-artifact-store.ts, on S3 s3-store.ts.
 */
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

/** What a store's `probe` found: it answers; a store on a file system also says how much room is left. */
export interface StoreProbe {
  kind: 'file' | 's3';
  /** Bytes this process may still write on the store's file system (file stores only). */
  freeBytes?: number;
  /** Size of that file system (file stores only). */
  totalBytes?: number;
}

/**
 * Reads (`get`, `open`, `exists`, `list`) see the job's published set when it has one
 * (`artifactSource`), else its plain objects (`put`).
 */
export interface ArtifactStore {
  /** A cheap check that the store is reachable and usable (readiness); throws when it is not. */
  probe(): Promise<StoreProbe>;
  /** Writes (or atomically replaces) one artifact; with a `fence`, only if it still says yes. */
  put(jobId: string, name: string, data: string | Uint8Array, options?: PutOptions): Promise<ArtifactInfo>;
  /** Writes one object of the attempt's private set `stageId` (not visible until its set is published). */
  stage(jobId: string, stageId: string, name: string, data: string | Uint8Array): Promise<void>;
  /** Removes a stage that will not be published. */
  discardStaged(jobId: string, stageId: string): Promise<void>;
  /**
   * Once the job's set is published (stage `keep`): removes every other stage and what killed
   * writers left (a `put`'s temporaries). Such writers no longer hold the job, so nothing live goes.
   */
  pruneStages(jobId: string, keep: string): Promise<void>;
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
   * Removes one plain object (`put`; a published set is removed with its job only), or everything
   * of the job (plain objects, every stage, leftovers) when `name` is omitted. Missing ones are ignored.
   */
  remove(jobId: string, name?: string): Promise<void>;
}

/** Throws unless `jobId` is a safe id and `name` (if given) a valid artifact name. */
export function checkArtifactName(jobId: string, name?: string): void {
  assertSafeId('job id', jobId);
  if (name !== undefined && !isValidArtifactName(name)) {
    throw new Error(`artifact name: expected ${ARTIFACT_NAME}, got ${JSON.stringify(name)}`);
  }
}

/** Stage ids: one path segment (the worker uses a hash of the job's lock token). */
const STAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;

export function checkStageId(stageId: string): void {
  if (!STAGE_ID.test(stageId)) throw new Error(`stage id: expected ${STAGE_ID}, got ${JSON.stringify(stageId)}`);
}
