/**
 * The artifact and dataset stores on an S3-compatible object store (`openArtifactStore` of an
 * `s3://bucket/prefix` URL), for workers on other hosts than the api. Connection settings are the
 * `S3_ENV` variables (env.ts). Objects are `<prefix>/<jobId>/<name>`; an S3 PUT (and a completed
 * multipart upload) replaces an object whole, so a reader never sees half of one. A fenced `put`
 * (checkpoints) uploads to a hidden `.<name>.<random>.tmp` key, asks the fence, then copies it into
 * place; a stage is `<jobId>/.stage-<id>/`, and once its set is published (published-sets.ts)
 * reads are served from it where it is: publishing copies nothing. Not exported from the package:
 * open stores with stores.ts (which re-exports `ObjectStoreError`).
 */
import { randomBytes } from 'node:crypto';
import { PassThrough, type Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  S3Client,
  paginateListObjectsV2,
  type _Object,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  ArtifactNotFoundError,
  FencedWriteError,
  checkArtifactName,
  checkStageId,
  isValidArtifactName,
  type ArtifactInfo,
  type ArtifactStore,
  type PutOptions,
  type StoreProbe,
  type StoredJob,
} from './artifacts';
import { artifactSource, type PublishedSets } from './published-sets';
import {
  DatasetNotFoundError,
  JsonFieldPart,
  jsonFieldHead,
  putThroughWriter,
  type DatasetField,
  type DatasetRows,
  type DatasetStore,
  type DatasetWriter,
} from './datasets';
import type { DatasetInput } from './payloads';
import { S3_ENV, readEnv, type EnvValues } from './env';
import { SAFE_ID, assertSafeId } from './keys';

/** Multipart part size and parts in flight: what one upload holds in memory at most. */
const PART_SIZE = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 4;

/** S3 bucket names (the general-purpose rules, shortened: 3 to 63 of a-z, 0-9, '.', '-'). */
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing '/'; '' for the bucket's root. */
  prefix: string;
}

/** `s3://bucket/prefix/` -> `s3://bucket/prefix`; throws `expected …` for a bad bucket or prefix. */
export function normalizeS3Location(location: string): string {
  const { bucket, prefix } = parseS3Location(location);
  return `s3://${bucket}${prefix ? `/${prefix}` : ''}`;
}

export function parseS3Location(location: string): S3Location {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(location);
  const bucket = m?.[1] ?? '';
  if (!BUCKET.test(bucket)) throw new Error(`expected s3://bucket/prefix with a bucket name matching ${BUCKET}`);
  const prefix = (m?.[2] ?? '').replace(/\/+$/, '');
  if (prefix.split('/').some((s) => s === '' || s === '.' || s === '..') && prefix !== '') {
    throw new Error('expected s3://bucket/prefix with a prefix of non-empty segments other than . and ..');
  }
  return { bucket, prefix };
}

export type S3Settings = EnvValues<typeof S3_ENV>;

/** One client per settings; the checksums only when an operation requires them (many S3-compatible servers refuse the SDK's default ones). */
export function s3Client(s: S3Settings): S3Client {
  const credentials =
    s.AWS_ACCESS_KEY_ID !== undefined && s.AWS_SECRET_ACCESS_KEY !== undefined
      ? { accessKeyId: s.AWS_ACCESS_KEY_ID, secretAccessKey: s.AWS_SECRET_ACCESS_KEY }
      : undefined; // the SDK's default chain (instance roles, profiles)
  return new S3Client({
    region: s.AWS_REGION,
    endpoint: s.S3_ENDPOINT,
    forcePathStyle: s.S3_FORCE_PATH_STYLE,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** The client from the process's `S3_ENV` variables (an `EnvError` names a bad one). */
export function s3ClientFromEnv(env: Readonly<Record<string, string | undefined>>): S3Client {
  return s3Client(readEnv(S3_ENV, env));
}

/** An S3 failure that is not a missing object: the bucket, the credentials, the server. */
export class ObjectStoreError extends Error {
  readonly code = 'store_unavailable';
  /** The bucket that failed (what an operator checks). */
  readonly bucket: string;
  constructor(message: string, options: { cause: unknown; bucket: string }) {
    super(message, options);
    this.bucket = options.bucket;
    this.name = 'ObjectStoreError';
  }
}

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const CREDENTIAL_ERRORS = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden']);

/** Whether `e` says the object (not the bucket) is missing. */
function isMissingObject(e: unknown): boolean {
  const err = e as SdkError;
  return err?.name === 'NoSuchKey' || (err?.name === 'NotFound' && err.$metadata?.httpStatusCode === 404);
}

/** `e` said in terms of the store: which bucket, and what to check. */
function storeError(what: string, bucket: string, e: unknown): Error {
  if (e instanceof ArtifactNotFoundError || e instanceof DatasetNotFoundError || e instanceof FencedWriteError)
    return e;
  const err = e as SdkError;
  const status = err?.$metadata?.httpStatusCode;
  const detail = `${err?.name ?? 'Error'}: ${err?.message ?? String(e)}`;
  if (err?.name === 'NoSuchBucket')
    return new ObjectStoreError(`${what}: S3 bucket "${bucket}" does not exist`, { cause: e, bucket });
  if (CREDENTIAL_ERRORS.has(err?.name ?? '') || status === 403) {
    return new ObjectStoreError(
      `${what}: S3 refused access to bucket "${bucket}" (${detail}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
      { cause: e, bucket },
    );
  }
  return new ObjectStoreError(`${what}: S3 bucket "${bucket}" failed (${detail})`, { cause: e, bucket });
}

/** Keys and the calls every S3 store makes, errors translated by `storeError`. */
class S3Objects {
  readonly bucket: string;
  private readonly root: string;

  constructor(
    readonly client: S3Client,
    location: string,
  ) {
    const loc = parseS3Location(location);
    this.bucket = loc.bucket;
    this.root = loc.prefix ? `${loc.prefix}/` : '';
  }

  key(rest: string): string {
    return this.root + rest;
  }

  /** `rest` of a key under the root. */
  relative(key: string): string {
    return key.slice(this.root.length);
  }

  async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw storeError(what, this.bucket, e);
    }
  }

  /** Uploads `body` (multipart above one part), whole or not at all. */
  upload(what: string, key: string, body: string | Uint8Array | Readable): Promise<unknown> {
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: key, Body: body },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
    });
    return this.call(what, () => upload.done());
  }

  head(what: string, key: string) {
    return this.call(what, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  async exists(what: string, key: string): Promise<boolean> {
    try {
      await this.head(what, key);
      return true;
    } catch (e) {
      if (isMissingObject((e as Error).cause)) return false;
      throw e;
    }
  }

  get(what: string, key: string) {
    return this.call(what, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  copy(what: string, from: string, to: string) {
    const source = `${this.bucket}/${from}`.split('/').map(encodeURIComponent).join('/');
    return this.call(what, () =>
      this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: to, CopySource: source })),
    );
  }

  deleteOne(what: string, key: string) {
    return this.call(what, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: key })));
  }

  /** Every object under `prefix` (relative to the root), page by page, in key order. */
  async *list(what: string, prefix: string, delimiter?: string): AsyncIterable<_Object> {
    const pages = paginateListObjectsV2(
      { client: this.client },
      { Bucket: this.bucket, Prefix: this.key(prefix), Delimiter: delimiter },
    );
    try {
      for await (const page of pages) yield* page.Contents ?? [];
    } catch (e) {
      throw storeError(what, this.bucket, e);
    }
  }

  /** Deletes every object under `prefix` (relative to the root) that `keep` does not keep, 1000 keys a request. */
  async deleteAll(what: string, prefix: string, keep: (key: string) => boolean = () => false): Promise<void> {
    let batch: string[] = [];
    const flush = async () => {
      if (!batch.length) return;
      const Objects = batch.map((Key) => ({ Key }));
      batch = [];
      await this.call(what, () =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects, Quiet: true } })),
      );
    };
    for await (const o of this.list(what, prefix)) {
      if (keep(o.Key!)) continue;
      batch.push(o.Key!);
      if (batch.length === 1000) await flush();
    }
    await flush();
  }
}

const infoOf = (name: string, size: number | undefined, modified: Date | undefined): ArtifactInfo => ({
  name,
  size: size ?? 0,
  modifiedAt: modified?.getTime() ?? 0,
});

export class S3ArtifactStore implements ArtifactStore {
  private readonly s3: S3Objects;

  constructor(
    client: S3Client,
    location: string,
    private readonly published: PublishedSets,
  ) {
    this.s3 = new S3Objects(client, location);
  }

  /** HEAD of the bucket: the server answers and these credentials may use the bucket. */
  async probe(): Promise<StoreProbe> {
    const { client, bucket } = this.s3;
    await this.s3.call('probe', () => client.send(new HeadBucketCommand({ Bucket: bucket })));
    return { kind: 's3' };
  }

  private key(jobId: string, name?: string): string {
    checkArtifactName(jobId, name);
    return this.s3.key(`${jobId}/${name ?? ''}`);
  }

  private stageKey(jobId: string, stageId: string, name?: string): string {
    checkArtifactName(jobId, name);
    checkStageId(stageId);
    return this.s3.key(`${jobId}/.stage-${stageId}/${name ?? ''}`);
  }

  async put(jobId: string, name: string, data: string | Uint8Array, options: PutOptions = {}): Promise<ArtifactInfo> {
    const what = `artifact ${name} of job ${jobId}`;
    const final = this.key(jobId, name);
    if (!options.fence) {
      await this.s3.upload(what, final, data);
    } else {
      const tmp = this.key(jobId) + `.${name}.${randomBytes(6).toString('hex')}.tmp`;
      try {
        await this.s3.upload(what, tmp, data);
        if (!(await options.fence())) throw new FencedWriteError(jobId, name);
        await this.s3.copy(what, tmp, final);
      } finally {
        await this.s3.deleteOne(what, tmp).catch(() => undefined); // a leftover goes at publish or removal
      }
    }
    const head = await this.s3.head(what, final);
    return infoOf(name, head.ContentLength, head.LastModified);
  }

  async stage(jobId: string, stageId: string, name: string, data: string | Uint8Array): Promise<void> {
    await this.s3.upload(`staged ${name} of job ${jobId}`, this.stageKey(jobId, stageId, name), data);
  }

  async pruneStages(jobId: string, keep: string): Promise<void> {
    const kept = this.stageKey(jobId, keep);
    await this.s3.deleteAll(`leftovers of job ${jobId}`, `${jobId}/.`, (key) => key.startsWith(kept));
  }

  /** The key `name` of the job is read from; null when the job's published set has no such name. */
  private async readKey(jobId: string, name: string): Promise<string | null> {
    checkArtifactName(jobId, name);
    const source = await artifactSource(this.published, jobId);
    if (source.stage === null) return this.key(jobId, name);
    return source.names.has(name) ? this.stageKey(jobId, source.stage, name) : null;
  }

  async discardStaged(jobId: string, stageId: string): Promise<void> {
    await this.s3.deleteAll(`stage ${stageId} of job ${jobId}`, this.s3.relative(this.stageKey(jobId, stageId)));
  }

  async get(jobId: string, name: string): Promise<Buffer> {
    const { stream } = await this.open(jobId, name);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
    return Buffer.concat(chunks);
  }

  async open(jobId: string, name: string): Promise<{ info: ArtifactInfo; stream: NodeJS.ReadableStream }> {
    const key = await this.readKey(jobId, name);
    if (key === null) throw new ArtifactNotFoundError(jobId, name);
    try {
      const res = await this.s3.get(`artifact ${name} of job ${jobId}`, key);
      return { info: infoOf(name, res.ContentLength, res.LastModified), stream: res.Body as Readable };
    } catch (e) {
      if (isMissingObject((e as Error).cause)) throw new ArtifactNotFoundError(jobId, name);
      throw e;
    }
  }

  async exists(jobId: string, name: string): Promise<boolean> {
    const key = await this.readKey(jobId, name);
    return key !== null && this.s3.exists(`artifact ${name} of job ${jobId}`, key);
  }

  async list(jobId: string): Promise<ArtifactInfo[]> {
    const out: ArtifactInfo[] = [];
    const source = await artifactSource(this.published, jobId);
    const dir = this.s3.relative(source.stage === null ? this.key(jobId) : this.stageKey(jobId, source.stage));
    for await (const o of this.s3.list(`artifacts of job ${jobId}`, dir, '/')) {
      const name = this.s3.relative(o.Key!).slice(dir.length);
      if (isValidArtifactName(name) && (source.stage === null || source.names.has(name)))
        out.push(infoOf(name, o.Size, o.LastModified));
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Keys come in order, so one job's objects are together: a job is yielded once its last one is seen. */
  async *jobs(): AsyncIterable<StoredJob> {
    let current = null as StoredJob | null;
    for await (const o of this.s3.list('stored jobs', '')) {
      const jobId = this.s3.relative(o.Key!).split('/')[0];
      if (!SAFE_ID.test(jobId) || !o.Key!.includes('/', this.s3.key(jobId).length)) continue;
      const at = o.LastModified?.getTime() ?? 0;
      if (current?.jobId === jobId) {
        current.modifiedAt = Math.max(current.modifiedAt, at);
        continue;
      }
      if (current) yield current;
      current = { jobId, modifiedAt: at };
    }
    if (current) yield current;
  }

  async remove(jobId: string, name?: string): Promise<void> {
    if (name !== undefined) await this.s3.deleteOne(`artifact ${name} of job ${jobId}`, this.key(jobId, name));
    else await this.s3.deleteAll(`job ${jobId}`, this.s3.relative(this.key(jobId)));
  }
}

/**
 * A dataset is a manifest `<prefix>/<id>.json` (`{ parts, fields, bytes }`) naming the objects of
 * its fields, `<prefix>/.parts/<id>.<random>/<field>` (each the JSON array text of the field, the
 * same text the file store keeps in one file). A writer streams each field into its own multipart
 * upload as rows come, and writes the manifest only once every field is stored: the set appears
 * whole (the manifest is one PUT) or not at all, and a later put replaces it whole.
 */
export class S3DatasetStore implements DatasetStore {
  private readonly s3: S3Objects;

  constructor(client: S3Client, location: string) {
    this.s3 = new S3Objects(client, location);
  }

  private manifestKey(id: string): string {
    assertSafeId('dataset id', id);
    return this.s3.key(`${id}.json`);
  }

  async put(id: string, data: DatasetInput | DatasetRows): Promise<{ bytes: number }> {
    return putThroughWriter(await this.writer(id), data);
  }

  writer(id: string): Promise<DatasetWriter> {
    const manifestKey = this.manifestKey(id);
    return Promise.resolve(new S3DatasetWriter({ s3: this.s3, id, manifestKey, current: () => this.manifest(id) }));
  }

  /** The manifest of `id`, or null when it has none. */
  async manifest(id: string): Promise<DatasetManifest | null> {
    try {
      const res = await this.s3.get(`dataset ${id}`, this.manifestKey(id));
      return JSON.parse(await res.Body!.transformToString()) as DatasetManifest;
    } catch (e) {
      if (isMissingObject((e as Error).cause)) return null;
      throw e;
    }
  }

  async get(id: string): Promise<DatasetInput> {
    const m = await this.manifest(id);
    if (!m) throw new DatasetNotFoundError(id);
    const out: Record<string, unknown> = {};
    for (const f of m.fields) {
      const res = await this.s3.get(`dataset ${id}`, this.s3.key(`${m.parts}/${f}`));
      out[f] = JSON.parse(await res.Body!.transformToString());
    }
    return out as unknown as DatasetInput;
  }

  exists(id: string): Promise<boolean> {
    return this.s3.exists(`dataset ${id}`, this.manifestKey(id));
  }

  async remove(id: string): Promise<void> {
    const m = await this.manifest(id);
    await this.s3.deleteOne(`dataset ${id}`, this.manifestKey(id));
    if (m) await this.s3.deleteAll(`dataset ${id}`, `${m.parts}/`);
  }
}

interface DatasetManifest {
  /** The parts' key prefix under the store's root. */
  parts: string;
  fields: DatasetField[];
  bytes: number;
}

/** One field's JSON text streamed into its own upload. */
function s3Part(s3: S3Objects, what: string, key: string): JsonFieldPart {
  const body = new PassThrough();
  return new JsonFieldPart(body, s3.upload(what, key, body));
}

class S3DatasetWriter implements DatasetWriter {
  private readonly parts = new Map<DatasetField, JsonFieldPart>();
  private readonly partsPrefix: string;

  constructor(
    private readonly o: {
      s3: S3Objects;
      id: string;
      manifestKey: string;
      /** The manifest in place now (its parts go once this one replaces it). */
      current: () => Promise<DatasetManifest | null>;
    },
  ) {
    this.partsPrefix = `.parts/${o.id}.${randomBytes(6).toString('hex')}`;
  }

  private part(field: DatasetField): JsonFieldPart {
    let p = this.parts.get(field);
    if (!p) {
      p = s3Part(this.o.s3, `dataset ${this.o.id}`, this.o.s3.key(`${this.partsPrefix}/${field}`));
      this.parts.set(field, p);
    }
    return p;
  }

  append(field: DatasetField, index: readonly number[], values: readonly number[] | Float64Array): void {
    this.part(field).append(index, values);
  }

  async flush(): Promise<void> {
    for (const p of this.parts.values()) await p.flush();
  }

  async commit(): Promise<{ bytes: number }> {
    const { s3, id, manifestKey } = this.o;
    const fields = (['x', 'y', 'lengths'] as const).filter((f) => f !== 'lengths' || this.parts.has(f));
    try {
      let bytes = 1; // the closing brace
      for (const [i, f] of fields.entries()) {
        await this.part(f).close();
        bytes += jsonFieldHead(i, f).length + this.part(f).bytes;
      }
      const manifest: DatasetManifest = { parts: this.partsPrefix, fields: [...fields], bytes };
      const previous = await this.o.current();
      await s3.upload(`dataset ${id}`, manifestKey, JSON.stringify(manifest));
      if (previous && previous.parts !== this.partsPrefix) await s3.deleteAll(`dataset ${id}`, `${previous.parts}/`);
      return { bytes };
    } catch (e) {
      await this.abort();
      throw e;
    }
  }

  async abort(): Promise<void> {
    for (const p of this.parts.values()) await p.abort();
    await this.o.s3.deleteAll(`dataset ${this.o.id}`, `${this.partsPrefix}/`);
  }
}
