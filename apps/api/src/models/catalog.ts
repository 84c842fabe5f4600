/**
 * The model registry behind /v1/models (the records: `ModelRegistryRecords` of @relu-lstm/jobs):
 * registering a completed train job's model as the next version of a name (its files copied into
 * the artifact store under a storage id of the version's own, so the job's retention never takes
 * them), reading, listing, aliases and deletion. Everything is per tenant: another tenant's model
 * is a 404 like one that does not exist.
 */
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  ARTIFACTS,
  ArtifactNotFoundError,
  LATEST_ALIAS,
  MODEL_ALIAS,
  MODEL_NAME,
  ModelRegistryRecords,
  RegisterModelSchema,
  SetAliasSchema,
  TrainResultSchema,
  copyModelFiles,
  newModelStorageId,
  validate,
  type ArtifactStore,
  type ModelAliasView,
  type ModelList,
  type ModelVersionRecord,
  type ModelVersionView,
  type ModelView,
  type RedisKeys,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { cursorOf, PageQuerySchema, parseCursor, servedBefore } from '../http/cursor';
import { ApiError } from '../http/errors';
import { ARTIFACT_STORE, CONFIG, KEYS, REDIS } from '../infra/tokens';
import { JobsService } from '../jobs/jobs.service';

export const modelPath = (name: string) => `/v1/models/${encodeURIComponent(name)}`;
export const versionPath = (name: string, v: number) => `${modelPath(name)}/versions/${v}`;

const badParam = (path: string, expected: string, received: string): ApiError =>
  ApiError.invalid([{ path, code: 'invalid_format', message: `invalid ${path}`, expected, received }]);

/** A model name of a path: 404 for one that cannot exist (as for one that does not). */
function checkName(name: string): void {
  if (!MODEL_NAME.test(name)) throw ApiError.notFound(`model ${name}`);
}

/** A version number of a path (`:version`). */
export function parseVersion(v: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(v)) throw badParam('version', 'a version number (1, 2, ...)', JSON.stringify(v));
  return Number(v);
}

function checkAlias(alias: string): void {
  if (!MODEL_ALIAS.test(alias) || alias === LATEST_ALIAS) {
    throw badParam('alias', `${MODEL_ALIAS} and not '${LATEST_ALIAS}'`, JSON.stringify(alias));
  }
}

export function versionView(
  name: string,
  version: number,
  record: ModelVersionRecord,
  aliases: Record<string, number>,
): ModelVersionView {
  return {
    name,
    version,
    aliases: Object.keys(aliases).filter((a) => aliases[a] === version),
    jobId: record.jobId,
    ...(record.description !== undefined ? { description: record.description } : {}),
    ...(record.tags !== undefined ? { tags: record.tags } : {}),
    createdAt: record.createdAt,
    model: record.model,
    ...(record.metrics ? { metrics: record.metrics } : {}),
    files: record.files.map((f) => ({ ...f, url: `${versionPath(name, version)}/artifacts/${f.name}` })),
    ref: `${name}@${version}`,
  };
}

@Injectable()
export class ModelCatalog {
  readonly records: ModelRegistryRecords;

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
    private readonly jobs: JobsService,
  ) {
    this.records = new ModelRegistryRecords(redis, keys);
  }

  /** POST /v1/models: the job's files copied, then the version recorded (a failed copy leaves an orphan retention removes). */
  async register(body: unknown, tenant: string): Promise<ModelVersionView> {
    const q = validate(RegisterModelSchema, body);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { name, fromJob, description, tags } = q.value;
    await this.checkRoom(tenant);
    const trained = await this.jobs.trainedModel(fromJob, 'fromJob', tenant);
    if (trained.issues.length) throw ApiError.invalid(trained.issues);
    if (!trained.cfg) throw ApiError.invalid([unreadableConfig(fromJob)]);
    const storageId = newModelStorageId();
    const files = await this.copyFiles(fromJob, storageId);
    const record: ModelVersionRecord = {
      storageId,
      jobId: fromJob,
      ...(description !== undefined ? { description } : {}),
      ...(tags !== undefined ? { tags } : {}),
      createdAt: Date.now(),
      model: trained.cfg.model,
      metrics: await this.finalMetrics(fromJob, tenant),
      files,
    };
    const max = this.config.maxModelVersionsPerTenant;
    const out = await this.records.register({ tenant, name, record, maxVersions: max }).catch(async (e) => {
      await this.store.remove(storageId).catch(() => undefined);
      throw e;
    });
    if (!out.ok) {
      await this.store.remove(storageId).catch(() => undefined);
      throw this.full(out.count);
    }
    return versionView(name, out.version, record, {});
  }

  private async checkRoom(tenant: string): Promise<void> {
    const max = this.config.maxModelVersionsPerTenant;
    const count = Number((await this.redis.get(this.keys.modelCount(tenant))) ?? 0);
    if (max > 0 && count >= max) throw this.full(count);
  }

  private full(count: number): ApiError {
    return new ApiError(
      429,
      'quota_exceeded',
      `the tenant has ${count} registered model versions, the most MAX_MODEL_VERSIONS_PER_TENANT (${this.config.maxModelVersionsPerTenant}) allows; delete one first`,
    );
  }

  /** Copies the job's model files under `storageId`; 400 naming `fromJob` if they went away meanwhile. */
  private async copyFiles(jobId: string, storageId: string): Promise<Array<{ name: string; size: number }>> {
    try {
      return await copyModelFiles(this.store, jobId, storageId);
    } catch (e) {
      if (!(e instanceof ArtifactNotFoundError)) throw e;
      throw ApiError.invalid([
        {
          path: 'fromJob',
          code: 'not_found',
          message: `job ${jobId}'s model files went away while being copied`,
          expected: 'the id of a completed train job',
          received: JSON.stringify(jobId),
        },
      ]);
    }
  }

  private async finalMetrics(jobId: string, tenant: string): Promise<ModelVersionRecord['metrics']> {
    const view = await this.jobs.get(jobId, tenant);
    const r = TrainResultSchema.safeParse(view.result);
    return r.success ? { finalLoss: r.data.finalLoss, finalValLoss: r.data.finalValLoss } : undefined;
  }

  async model(name: string, tenant: string): Promise<ModelView> {
    checkName(name);
    const m = await this.records.model(tenant, name);
    if (!m || m.versions.size === 0) throw ApiError.notFound(`model ${name}`);
    const numbers = [...m.versions.keys()].sort((a, b) => a - b);
    return {
      name,
      createdAt: m.createdAt,
      latestVersion: numbers[numbers.length - 1],
      aliases: m.aliases,
      versions: numbers.map((v) => versionView(name, v, m.versions.get(v)!, m.aliases)),
    };
  }

  async version(name: string, version: string, tenant: string): Promise<ModelVersionView> {
    checkName(name);
    const v = parseVersion(version);
    const m = await this.records.model(tenant, name);
    const record = m?.versions.get(v);
    if (!m || !record) throw ApiError.notFound(`version ${version} of model ${name}`);
    return versionView(name, v, record, m.aliases);
  }

  /** The storage id of a version, for its file downloads. */
  async storageOf(name: string, version: string, tenant: string): Promise<{ storageId: string; label: string }> {
    checkName(name);
    const v = parseVersion(version);
    const record = await this.records.version(tenant, name, v);
    if (!record) throw ApiError.notFound(`version ${version} of model ${name}`);
    return { storageId: record.storageId, label: `model ${name}@${v}` };
  }

  /** Newest first, the cursor as GET /v1/jobs's. */
  async list(query: unknown, tenant: string): Promise<ModelList> {
    const q = validate(PageQuerySchema, query);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { limit, cursor } = q.value;
    const after = cursor ? parseCursor(cursor) : null;
    const index = this.keys.modelIndex(tenant);
    const skip = after ? await this.redis.zcount(index, after.score, after.score) : 0;
    const raw = await this.redis.zrevrangebyscore(
      index,
      after ? String(after.score) : '+inf',
      '-inf',
      'WITHSCORES',
      'LIMIT',
      0,
      limit + 1 + skip,
    );
    const entries = [];
    for (let i = 0; i < raw.length; i += 2) {
      const e = { id: raw[i], score: Number(raw[i + 1]) };
      if (!servedBefore(e, after)) entries.push(e);
    }
    const page = entries.slice(0, limit);
    const models = await Promise.all(page.map((e) => this.records.model(tenant, e.id)));
    const items = page.flatMap((e, i) => {
      const m = models[i];
      if (!m || m.versions.size === 0) return [];
      const versions = [...m.versions.keys()];
      return [
        {
          name: e.id,
          createdAt: m.createdAt,
          latestVersion: Math.max(...versions),
          versionCount: versions.length,
          aliases: m.aliases,
        },
      ];
    });
    return { items, nextCursor: entries.length > limit ? cursorOf(page[page.length - 1]) : null };
  }

  async setAlias(name: string, alias: string, body: unknown, tenant: string): Promise<ModelAliasView> {
    checkName(name);
    checkAlias(alias);
    const q = validate(SetAliasSchema, body);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { version } = q.value;
    if (!(await this.records.setAlias(tenant, name, alias, version))) {
      throw ApiError.notFound(`version ${version} of model ${name}`);
    }
    return { name, alias, version };
  }

  async deleteAlias(name: string, alias: string, tenant: string): Promise<void> {
    checkName(name);
    checkAlias(alias);
    if (!(await this.records.deleteAlias(tenant, name, alias)))
      throw ApiError.notFound(`alias ${alias} of model ${name}`);
  }

  /** 409 while an alias points at it; the files go after the records. */
  async deleteVersion(name: string, version: string, tenant: string): Promise<void> {
    checkName(name);
    const v = parseVersion(version);
    const record = await this.records.version(tenant, name, v);
    if (!record) throw ApiError.notFound(`version ${version} of model ${name}`);
    const out = await this.records.deleteVersion(tenant, name, v);
    if (!out.ok && 'aliases' in out) {
      throw new ApiError(
        409,
        'conflict',
        `version ${v} of model ${name} is the target of alias ${out.aliases.join(', ')}; move or delete the alias first`,
      );
    }
    if (!out.ok) throw ApiError.notFound(`version ${version} of model ${name}`);
    // Left behind if this fails: retention removes it as an orphan (it is no longer a registered blob).
    await this.store.remove(record.storageId).catch(() => undefined);
  }
}

function unreadableConfig(jobId: string): ValidationIssue {
  return {
    path: 'fromJob',
    code: 'custom',
    message: `the ${ARTIFACTS.config} of job ${jobId} is unreadable`,
    expected: 'a train job whose config.json names its model',
    received: JSON.stringify(jobId),
  };
}
