/**
 * The model registry: a tenant's named models, each a list of numbered versions (1, 2, ...) copied
 * from completed train jobs, and aliases (`production`) that point at one version. A version's files
 * live in the artifact store under a storage id of their own (`model-<uuid>`), not under the job's
 * id, so the job's retention never removes them; the sweep skips the ids in `keys.modelBlobs()`.
 *
 * Redis (keys.ts): `<p>:model:<tenant>:<name>` hash (`createdAt`, `seq` the last version number
 * handed out, `alias:<alias>` -> version), `<p>:model:<tenant>:<name>:versions` hash (version ->
 * `ModelVersionRecord` JSON), `<p>:models:<tenant>` zset (names by creation time),
 * `<p>:models:<tenant>:count` (the tenant's versions, for its quota) and `<p>:model-blobs` (set of
 * the storage ids of every registered version). Every write that must see another is one Lua script,
 * so version numbers are handed out race-free (HINCRBY inside the script).
 *
 * `resolveModelRef` turns `"name"`, `"name@3"` or `"name@alias"` into a version: the one way to
 * resolve a reference (api submissions, and anything else that takes a model by name).
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { StoredArchitectureSchema } from './worker-contract';
import { ArtifactNotFoundError, type ArtifactStore } from './artifacts';
import { ARTIFACTS } from './events';
import type { RedisKeys } from './keys';
import { LATEST_ALIAS, MODEL_NAME, MODEL_REF, type ModelVersionRef } from './model-names';

export * from './model-names';

/** A version's storage id in the artifact store. */
export const MODEL_STORAGE_PREFIX = 'model-';
const TAG_KEY = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const MAX_TAGS = 20;

export const ModelTagsSchema = z
  .record(z.string().regex(TAG_KEY), z.string().max(256))
  .refine((t) => Object.keys(t).length <= MAX_TAGS, { message: `at most ${MAX_TAGS} tags` });

/** Body of POST /v1/models. */
export const RegisterModelSchema = z.strictObject({
  name: z.string().regex(MODEL_NAME),
  /** A completed train job of the tenant; its artifacts are copied. */
  fromJob: z.uuid(),
  description: z.string().max(500).optional(),
  tags: ModelTagsSchema.optional(),
});
export type RegisterModel = z.infer<typeof RegisterModelSchema>;

/** Body of PUT /v1/models/:name/aliases/:alias. */
export const SetAliasSchema = z.strictObject({ version: z.number().int().min(1) });

const StoredFileSchema = z.strictObject({ name: z.string(), size: z.number().int() });

/** A version as Redis holds it (its number is the hash field). */
export const ModelVersionRecordSchema = z.strictObject({
  storageId: z.string(),
  jobId: z.string(),
  description: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
  createdAt: z.number().int(),
  /** The architecture of the job's `config.json` (what inference and `from` check against). */
  model: StoredArchitectureSchema,
  /** The copied files (model.safetensors, config.json, state.json, metrics.csv). */
  files: z.array(StoredFileSchema),
  /** The train job's final losses, from its result. */
  metrics: z.strictObject({ finalLoss: z.number().nullable(), finalValLoss: z.number().nullable() }).optional(),
});
export type ModelVersionRecord = z.infer<typeof ModelVersionRecordSchema>;

export interface ResolvedModelVersion {
  ref: ModelVersionRef;
  record: ModelVersionRecord;
}

/** A parsed reference; `selector` null: the latest version. */
export interface ParsedModelRef {
  name: string;
  selector: { version: number } | { alias: string } | null;
}

export function parseModelRef(ref: string): ParsedModelRef | null {
  const m = MODEL_REF.exec(ref);
  if (!m) return null;
  const sel = m[2];
  if (sel === undefined || sel === LATEST_ALIAS) return { name: m[1], selector: null };
  return { name: m[1], selector: /^\d/.test(sel) ? { version: Number(sel) } : { alias: sel } };
}

export const newModelStorageId = (): string => `${MODEL_STORAGE_PREFIX}${randomUUID()}`;

/** The files a version keeps, in the order they are copied; the first two must exist. */
export const MODEL_VERSION_FILES = [ARTIFACTS.model, ARTIFACTS.config, ARTIFACTS.state, ARTIFACTS.metrics] as const;
const REQUIRED_FILES = 2;

/**
 * Copies a train job's model files under `storageId` through the store interface (so every store
 * kind does it alike); a missing required file throws `ArtifactNotFoundError`, and on any failure
 * what was copied is removed again.
 */
export async function copyModelFiles(
  store: ArtifactStore,
  jobId: string,
  storageId: string,
): Promise<Array<{ name: string; size: number }>> {
  const files: Array<{ name: string; size: number }> = [];
  try {
    for (const [i, name] of MODEL_VERSION_FILES.entries()) {
      const bytes = await store.get(jobId, name).catch((e: unknown) => {
        if (i >= REQUIRED_FILES && e instanceof ArtifactNotFoundError) return null;
        throw e;
      });
      if (bytes === null) continue;
      const info = await store.put(storageId, name, bytes);
      files.push({ name, size: info.size });
    }
  } catch (e) {
    await store.remove(storageId).catch(() => undefined);
    throw e;
  }
  return files;
}

/** Why a reference does not resolve (the caller names its field). */
export type ModelRefProblem =
  | { kind: 'syntax'; expected: string }
  | { kind: 'no_model'; name: string }
  | { kind: 'no_version'; name: string; version: number }
  | { kind: 'no_alias'; name: string; alias: string };

export function modelRefProblemMessage(p: ModelRefProblem): string {
  switch (p.kind) {
    case 'syntax':
      return 'not a model reference';
    case 'no_model':
      return `model ${p.name} does not exist`;
    case 'no_version':
      return `model ${p.name} has no version ${p.version}`;
    case 'no_alias':
      return `model ${p.name} has no alias ${p.alias}`;
  }
}

export const MODEL_REF_EXPECTED = '"name", "name@<version>" or "name@<alias>" of a registered model';

/** The version `ref` names for `tenant`, or why there is none. */
export async function resolveModelRef(
  redis: Redis,
  keys: RedisKeys,
  tenant: string,
  ref: string,
): Promise<ResolvedModelVersion | ModelRefProblem> {
  const parsed = parseModelRef(ref);
  if (!parsed) return { kind: 'syntax', expected: MODEL_REF_EXPECTED };
  const { name, selector } = parsed;
  const model = keys.model(tenant, name);
  let version: number;
  if (selector === null) {
    const latest = await latestVersion(redis, keys, tenant, name);
    if (latest === null) return { kind: 'no_model', name };
    version = latest;
  } else if ('version' in selector) {
    version = selector.version;
  } else {
    const [exists, v] = await Promise.all([redis.exists(model), redis.hget(model, `alias:${selector.alias}`)]);
    if (!exists) return { kind: 'no_model', name };
    if (v === null) return { kind: 'no_alias', name, alias: selector.alias };
    version = Number(v);
  }
  const record = await readVersion(redis, keys, tenant, name, version);
  if (record === null) {
    return (await redis.exists(model)) ? { kind: 'no_version', name, version } : { kind: 'no_model', name };
  }
  return { ref: { name, version, storageId: record.storageId, jobId: record.jobId }, record };
}

export function isResolved(r: ResolvedModelVersion | ModelRefProblem): r is ResolvedModelVersion {
  return 'ref' in r;
}

/** The highest version number still registered; null when the model has none. */
export async function latestVersion(
  redis: Redis,
  keys: RedisKeys,
  tenant: string,
  name: string,
): Promise<number | null> {
  const fields = await redis.hkeys(keys.modelVersions(tenant, name));
  return fields.length ? Math.max(...fields.map(Number)) : null;
}

export async function readVersion(
  redis: Redis,
  keys: RedisKeys,
  tenant: string,
  name: string,
  version: number,
): Promise<ModelVersionRecord | null> {
  const raw = await redis.hget(keys.modelVersions(tenant, name), String(version));
  const r = raw ? ModelVersionRecordSchema.safeParse(JSON.parse(raw)) : null;
  return r?.success ? r.data : null;
}

// KEYS: model, versions, index, count, blobs. ARGV: name, now, record JSON, storage id, max versions (0: none).
// Returns {1, version} or {0, count}.
const REGISTER = `
local count = tonumber(redis.call('GET', KEYS[4]) or '0')
if tonumber(ARGV[5]) > 0 and count >= tonumber(ARGV[5]) then return {0, count} end
if redis.call('HSETNX', KEYS[1], 'createdAt', ARGV[2]) == 1 then redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1]) end
local v = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[2], v, ARGV[3])
redis.call('INCR', KEYS[4])
redis.call('SADD', KEYS[5], ARGV[4])
return {1, v}
`;

// KEYS: model, versions. ARGV: alias, version. 1 set, 0 no such version.
const SET_ALIAS = `
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'alias:' .. ARGV[1], ARGV[2])
return 1
`;

// KEYS: model, versions, index, count, blobs. ARGV: name, version, storage id.
// Returns {1} removed, {0} no such version, {2, alias...} aliases point at it. The last version takes the model with it.
const DELETE_VERSION = `
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {0} end
local fields = redis.call('HGETALL', KEYS[1])
local pointing = {2}
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 6) == 'alias:' and fields[i + 1] == ARGV[2] then
    table.insert(pointing, string.sub(fields[i], 7))
  end
end
if #pointing > 1 then return pointing end
redis.call('HDEL', KEYS[2], ARGV[2])
redis.call('DECR', KEYS[4])
redis.call('SREM', KEYS[5], ARGV[3])
if redis.call('HLEN', KEYS[2]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {1}
`;

export type RegisterOutcome = { ok: true; version: number } | { ok: false; count: number };
export type DeleteVersionOutcome = { ok: true } | { ok: false; reason: 'not_found' } | { ok: false; aliases: string[] };

/** The Redis side of the registry for one key space (the files are the caller's). */
export class ModelRegistryRecords {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
  ) {}

  private modelKeys(tenant: string, name: string): string[] {
    const k = this.keys;
    return [k.model(tenant, name), k.modelVersions(tenant, name), k.modelIndex(tenant), k.modelCount(tenant)];
  }

  /** Records `record` as the next version of `name`, unless the tenant has `maxVersions` already. */
  async register(o: {
    tenant: string;
    name: string;
    record: ModelVersionRecord;
    maxVersions: number;
  }): Promise<RegisterOutcome> {
    const keys = [...this.modelKeys(o.tenant, o.name), this.keys.modelBlobs()];
    const res = (await this.redis.eval(
      REGISTER,
      keys.length,
      ...keys,
      o.name,
      o.record.createdAt,
      JSON.stringify(ModelVersionRecordSchema.parse(o.record)),
      o.record.storageId,
      o.maxVersions,
    )) as [number, number];
    return res[0] === 1 ? { ok: true, version: res[1] } : { ok: false, count: res[1] };
  }

  /** False when the model has no such version. */
  async setAlias(tenant: string, name: string, alias: string, version: number): Promise<boolean> {
    const [model, versions] = this.modelKeys(tenant, name);
    return (await this.redis.eval(SET_ALIAS, 2, model, versions, alias, version)) === 1;
  }

  /** False when there was no such alias. */
  async deleteAlias(tenant: string, name: string, alias: string): Promise<boolean> {
    return (await this.redis.hdel(this.keys.model(tenant, name), `alias:${alias}`)) === 1;
  }

  /** Removes a version's records (the caller then removes its files); refused while an alias points at it. */
  async deleteVersion(tenant: string, name: string, version: number): Promise<DeleteVersionOutcome> {
    const record = await readVersion(this.redis, this.keys, tenant, name, version);
    if (!record) return { ok: false, reason: 'not_found' };
    const keys = [...this.modelKeys(tenant, name), this.keys.modelBlobs()];
    const res = (await this.redis.eval(DELETE_VERSION, keys.length, ...keys, name, version, record.storageId)) as Array<
      number | string
    >;
    if (res[0] === 1) return { ok: true };
    if (res[0] === 0) return { ok: false, reason: 'not_found' };
    return { ok: false, aliases: res.slice(1).map(String) };
  }

  /** The model's creation time, versions and aliases; null when the tenant has no such model. */
  async model(
    tenant: string,
    name: string,
  ): Promise<{ createdAt: number; versions: Map<number, ModelVersionRecord>; aliases: Record<string, number> } | null> {
    const [fields, versions] = await Promise.all([
      this.redis.hgetall(this.keys.model(tenant, name)),
      this.redis.hgetall(this.keys.modelVersions(tenant, name)),
    ]);
    if (fields.createdAt === undefined) return null;
    const aliases: Record<string, number> = {};
    for (const [k, v] of Object.entries(fields)) if (k.startsWith('alias:')) aliases[k.slice(6)] = Number(v);
    const parsed = new Map<number, ModelVersionRecord>();
    for (const [v, raw] of Object.entries(versions)) {
      const r = ModelVersionRecordSchema.safeParse(JSON.parse(raw));
      if (r.success) parsed.set(Number(v), r.data);
    }
    return { createdAt: Number(fields.createdAt), versions: parsed, aliases };
  }

  version(tenant: string, name: string, version: number): Promise<ModelVersionRecord | null> {
    return readVersion(this.redis, this.keys, tenant, name, version);
  }

  resolve(tenant: string, ref: string): Promise<ResolvedModelVersion | ModelRefProblem> {
    return resolveModelRef(this.redis, this.keys, tenant, ref);
  }
}
