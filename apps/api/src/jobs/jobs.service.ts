/**
 * Submitting, listing and cancelling jobs. The api only produces jobs: it validates the payload,
 * checks what the payload refers to (dataset, earlier job, registered model) exists, and hands the job to
 * `planJob` + `produceJob` of @relu-lstm/jobs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  ARTIFACTS,
  ConfigArtifactSchema,
  architectureMismatches,
  inlineModelOf,
  isResolved,
  modelRefOf,
  modelRefProblemMessage,
  resolveModelRef,
  MODEL_REF_EXPECTED,
  type ModelVersionRef,
  type PayloadModelRef,
  type DatasetMeta,
  IDEMPOTENCY_TTL_SEC,
  JOB_STATES,
  JOB_TYPES,
  JOB_PRIORITY,
  type JobOptions,
  JobNameSchema,
  LABEL_LIMITS,
  parseTagFilter,
  searchKeys,
  walkJobIndex,
  expireJobRecords,
  payloadSchema,
  planJob,
  produceJob,
  validate,
  validateSubmission,
  isTerminal,
  WAITING_FOR_WORKER,
  waitingForOf,
  jobCostIssue,
  type CostedJob,
  type ArtifactStore,
  type CancelRequest,
  type CancelResponse,
  type ConfigArtifact,
  type JobContract,
  type JobEventStream,
  type JobList,
  type JobMeta,
  type JobState,
  type JobType,
  type JobView,
  type ModelSpec,
  type PayloadOf,
  type QueueName,
  type RedisKeys,
  type SubmitResponse,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import { validationSplitProblem } from '@relu-lstm/lstm/config';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { JobQueues } from '../infra/job-queues';
import { liveWorkers } from '../infra/workers';
import { ARTIFACT_STORE, CONFIG, CONTRACT, EVENT_STREAM, KEYS, REDIS } from '../infra/tokens';
import { JobRecords, linksOf } from './job-records';
import { JobQuota } from './quota';
import { cursorOf, PageQuerySchema, parseCursor, servedBefore } from '../http/cursor';
import { DatasetCatalog } from '../datasets/catalog';

export interface Submitted {
  /** True when an Idempotency-Key repeat returned the job of the first request. */
  replayed: boolean;
  body: SubmitResponse;
  /** The job's meta (the one just written, or the first request's on a replay). */
  meta: JobMeta;
}

/**
 * KEYS[1] an idempotency key; ARGV the value read before ('' for none), the new record, its TTL.
 * Takes the key only if it still holds what was read: 1 taken, 0 another request took it first.
 */
const RETAKE_IDEMPOTENCY_KEY = `if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`;

/** A key younger than this whose job has no meta yet belongs to a request still in flight. */
const IDEMPOTENCY_IN_FLIGHT_SEC = 60;

const inFlight = () =>
  new ApiError(409, 'conflict', 'a request with this Idempotency-Key is still being processed; retry shortly');

/** Idempotency keys: printable ASCII, 1..255 characters. */
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

const IdempotencyRecord = z.object({ id: z.string(), type: z.string(), bodyHash: z.string() });

/** JSON with object keys sorted, so equal payloads hash equally whatever their key order. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The job options' part of an idempotent request's hash: none for the defaults, so the hash of a
 * body without options is what it was before jobs had them. */
function optionsHashPart(o: JobOptions): string {
  const defaults = o.name === undefined && o.tags === undefined && o.priority === JOB_PRIORITY.default;
  return defaults ? '' : `\n${canonicalJson(o)}`;
}

const datasetGone = (datasetId: string): ValidationIssue => ({
  path: 'data.datasetId',
  code: 'not_found',
  message: `dataset ${datasetId} does not exist`,
  expected: 'the id of an uploaded dataset',
  received: JSON.stringify(datasetId),
});

/** `since`: milliseconds since the epoch, or an ISO 8601 date. */
const SinceSchema = z.union([
  z
    .string()
    .regex(/^\d{1,15}$/)
    .transform(Number),
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
  z.iso.date().transform((s) => Date.parse(s)),
]);

/** `tag=k:v`, repeatable: every tag must match. */
const TagFilterSchema = z.union([z.string(), z.array(z.string()).max(LABEL_LIMITS.maxTags)]).transform((v, ctx) => {
  const tags = [];
  for (const s of Array.isArray(v) ? v : [v]) {
    const t = parseTagFilter(s);
    if (t) tags.push(t);
    else
      ctx.addIssue({
        code: 'custom',
        message: `expected key:value (a tag key, then a tag value), received ${JSON.stringify(s)}`,
        params: { expected: 'key:value', received: JSON.stringify(s) },
      });
  }
  return tags;
});

export const ListQuerySchema = PageQuerySchema.extend({
  state: z.enum(JOB_STATES).optional(),
  type: z.enum(JOB_TYPES).optional(),
  name: JobNameSchema.optional(),
  tag: TagFilterSchema.optional(),
  since: SinceSchema.optional(),
});

/** The issues of what a payload refers to, and the job as the cost estimate sees it (null: cannot be sized). */
interface RefCheck {
  issues: ValidationIssue[];
  costed: CostedJob | null;
  /** The registered version a model reference resolved to (recorded on the job). */
  modelVersion?: ModelVersionRef;
}

/** A trained model a payload names: the issues, its config (null: unreadable), how messages name it, the version. */
export interface NamedModel {
  issues: ValidationIssue[];
  cfg: ConfigArtifact | null;
  label: string;
  version?: ModelVersionRef;
}

/** A payload that passed every check, with the registered model version it names (if any); or the issues. */
export type CheckedPayload<T extends JobType> =
  { ok: true; value: PayloadOf<T>; modelVersion?: ModelVersionRef } | { ok: false; issues: ValidationIssue[] };

/** Most index entries one list request looks at when filtering by state or by several sets. */
const MAX_SCANNED = 1000;

@Injectable()
export class JobsService {
  private readonly log = new Logger('Jobs');

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONTRACT) private readonly contract: JobContract,
    @Inject(EVENT_STREAM) private readonly events: JobEventStream,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    private readonly queues: JobQueues,
    private readonly records: JobRecords,
    private readonly quota: JobQuota,
    private readonly datasets: DatasetCatalog,
  ) {}

  /** The uploaded dataset each job type's payload names, if any (DELETE /v1/datasets/:id waits for its jobs). */
  private readonly datasetOf: { [T in JobType]: (p: PayloadOf<T>) => string | undefined } = {
    train: (p) => p.data.datasetId,
    infer: () => undefined,
  };

  /**
   * What each job type's payload refers to (datasets, earlier jobs) that must exist for the tenant,
   * read once: the issues, and the job as the cost estimate sees it (with the dataset or model named).
   */
  private readonly refChecks: { [T in JobType]: (p: PayloadOf<T>, tenant: string) => Promise<RefCheck> } = {
    train: (p, tenant) => this.checkTrainRefs(p, tenant),
    infer: (p, tenant) => this.checkInferRefs(p, tenant),
  };

  /**
   * Everything a submission checks in its payload before anything is written: the schema, what the
   * payload refers to (datasets, earlier jobs, registered models) and its estimated engine memory
   * against LIMIT_MAX_JOB_MEMORY_MB (cost.ts). The sweeps route checks each trial with it.
   */
  async checkPayload<T extends JobType>(type: T, body: unknown, tenant: string): Promise<CheckedPayload<T>> {
    const parsed = validate(payloadSchema(type, this.contract), body);
    if (!parsed.ok) return parsed;
    return this.checkRefs(type, parsed.value as PayloadOf<T>, tenant);
  }

  private async checkRefs<T extends JobType>(
    type: T,
    payload: PayloadOf<T>,
    tenant: string,
  ): Promise<CheckedPayload<T>> {
    const refs = await this.refChecks[type](payload, tenant);
    if (refs.issues.length) return { ok: false, issues: refs.issues };
    const costIssue = refs.costed && jobCostIssue(refs.costed, this.contract.limits.maxJobMemoryMb);
    if (costIssue) return { ok: false, issues: [costIssue] };
    return { ok: true, value: payload, modelVersion: refs.modelVersion };
  }

  async submit<T extends JobType>(type: T, body: unknown, tenant: string, idempotencyKey?: string): Promise<Submitted> {
    // Name, tags and priority are top-level fields of the body beside the payload's (job-options.ts).
    const parsed = validateSubmission(payloadSchema(type, this.contract), body);
    if (!parsed.ok) throw ApiError.invalid(parsed.issues);
    const jobOptions = parsed.value.options;
    const checked = await this.checkRefs(type, parsed.value.payload as PayloadOf<T>, tenant);
    if (!checked.ok) throw ApiError.invalid(checked.issues);
    const payload = checked.value;

    const id = randomUUID();
    let idemKey: string | null = null;
    if (idempotencyKey !== undefined) {
      const bodyHash = createHash('sha256')
        .update(`${type}\n${canonicalJson(payload)}${optionsHashPart(jobOptions)}`)
        .digest('hex');
      const claim = await this.claimIdempotencyKey({ key: idempotencyKey, tenant, record: { id, type, bodyHash } });
      if ('replayed' in claim) return claim;
      idemKey = claim.idemKey;
    }

    const plan = await this.withWaitingFor(
      planJob(type, payload, {
        limits: this.contract.limits,
        tenant,
        id,
        policy: this.config.jobPolicy,
        job: jobOptions,
        modelVersion: checked.modelVersion,
      }),
    );
    const datasetId = this.datasetOf[type](payload);
    try {
      if (datasetId && !(await this.datasets.reference(datasetId, plan.id))) {
        throw ApiError.invalid([datasetGone(datasetId)]);
      }
      await this.quota.admit(tenant, (quota) =>
        produceJob({ redis: this.redis, keys: this.keys, queue: (q: QueueName) => this.queues.queue(q) }, plan, quota),
      );
    } catch (e) {
      if (idemKey) await this.redis.del(idemKey).catch(() => undefined);
      if (datasetId) await this.datasets.unreference(datasetId, plan.id).catch(() => undefined);
      throw e;
    }
    const { waitingFor } = plan.meta;
    if (waitingFor !== undefined) await this.sayWaiting(plan.id, waitingFor);
    return {
      replayed: false,
      body: { id: plan.id, state: 'queued', links: linksOf(plan.id), ...(waitingFor !== undefined && { waitingFor }) },
      meta: plan.meta,
    };
  }

  /**
   * Takes the tenant's Idempotency-Key for this request (`record`), or answers the earlier request's
   * job when the key was used before with the same body and route (422 with another one; 409 while
   * the first request is still being processed).
   */
  private async claimIdempotencyKey(o: {
    key: string;
    tenant: string;
    record: { id: string; type: JobType; bodyHash: string };
  }): Promise<{ idemKey: string } | Submitted> {
    const { key, tenant } = o;
    if (!IDEMPOTENCY_KEY.test(key)) {
      throw ApiError.invalid([
        {
          path: 'Idempotency-Key',
          code: 'invalid_format',
          message: 'invalid header',
          expected: '1 to 255 printable ASCII characters',
          received: `${key.length} characters`,
        },
      ]);
    }
    const idemKey = this.keys.idempotency(tenant, key);
    const record = JSON.stringify(o.record);
    if ((await this.redis.set(idemKey, record, 'EX', IDEMPOTENCY_TTL_SEC, 'NX')) === 'OK') return { idemKey };
    const prevRaw = await this.redis.get(idemKey);
    const prev = IdempotencyRecord.safeParse(JSON.parse(prevRaw ?? 'null'));
    if (prev.success) {
      if (prev.data.bodyHash !== o.record.bodyHash || prev.data.type !== o.record.type) {
        throw new ApiError(
          422,
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different request body or route',
        );
      }
      const meta = await this.records.meta(prev.data.id, tenant);
      if (meta) {
        const view = await this.records.view(meta);
        const { waitingFor } = view;
        const body = { id: meta.id, state: view.state, links: linksOf(meta.id), ...(waitingFor && { waitingFor }) };
        return { replayed: true, body, meta };
      }
      // No meta: the first request is still being processed (its key is seconds old), or its job
      // is past retention (docs/worker.md "Retention"), and the key starts over with this request.
      if ((await this.redis.ttl(idemKey)) > IDEMPOTENCY_TTL_SEC - IDEMPOTENCY_IN_FLIGHT_SEC) throw inFlight();
    }
    // Expired between SET and GET, or its job is gone: take the key now, unless a concurrent
    // retry took it since the GET (a plain SET let both submit, two jobs for one key).
    if ((await this.redis.eval(RETAKE_IDEMPOTENCY_KEY, 1, idemKey, prevRaw ?? '', record, IDEMPOTENCY_TTL_SEC)) !== 1)
      throw inFlight();
    return { idemKey };
  }

  /** The plan with `meta.waitingFor` when no live worker serves its queue and only some can (`waitingForOf`). */
  private async withWaitingFor<P extends { meta: JobMeta }>(plan: P): Promise<P> {
    const waitingFor = waitingForOf(plan.meta.queue as QueueName, await liveWorkers(this.redis, this.keys));
    return waitingFor === null ? plan : { ...plan, meta: { ...plan.meta, waitingFor } };
  }

  /** The job's stream and the api's log say what an accepted job waits for. */
  private async sayWaiting(id: string, waitingFor: string): Promise<void> {
    const message = `accepted; no live worker serves its queue: it waits for ${waitingFor}`;
    this.log.warn(`job ${id}: ${message}`);
    await this.events
      .append(id, {
        type: 'log',
        at: Date.now(),
        level: 'warning',
        code: WAITING_FOR_WORKER,
        message,
        data: { waitingFor },
      })
      .catch((e) => this.log.warn(`job ${id}: could not append its waiting_for event: ${(e as Error).message}`));
  }

  private datasetIssues(
    datasetId: string,
    d: DatasetMeta | null,
    model: ModelSpec,
    validationSplit: number,
  ): ValidationIssue[] {
    if (!d) return [datasetGone(datasetId)];
    const issues: ValidationIssue[] = [];
    if (d.inputSize !== model.inputSize) {
      issues.push({
        path: 'model.inputSize',
        code: 'custom',
        message: `the dataset has ${d.inputSize} input features`,
        expected: String(d.inputSize),
        received: String(model.inputSize),
      });
    }
    const perStep = d.targetShape.length === 3;
    const o = d.targetShape[d.targetShape.length - 1];
    if (o !== model.outputSize) {
      issues.push({
        path: 'model.outputSize',
        code: 'custom',
        message: `the dataset's targets have ${o} values`,
        expected: String(o),
        received: String(model.outputSize),
      });
    }
    if (perStep !== (model.head === 'manyToMany')) {
      const want = perStep ? 'manyToMany' : 'lastStep';
      issues.push({
        path: 'model.head',
        code: 'custom',
        message: `the dataset has ${perStep ? 'per-step targets [N,T,O]' : 'one target per sequence [N,O]'}`,
        expected: `'${want}'`,
        received: `'${model.head}'`,
      });
    }
    const split = validationSplitProblem(validationSplit, d.samples);
    if (split)
      issues.push({
        path: 'training.validationSplit',
        code: 'custom',
        message: `the dataset has ${d.samples} samples`,
        expected: split,
        received: String(validationSplit),
      });
    return issues;
  }

  /**
   * An earlier train job usable as a model: same tenant, train, `model.safetensors` and
   * `config.json` present. Returns the issues, else the job's config (null if unreadable: the
   * worker reports it then). Also what POST /v1/models registers.
   */
  async trainedModel(jobId: string, path: string, tenant: string): Promise<NamedModel> {
    const label = `job ${jobId}`;
    const meta = await this.records.meta(jobId, tenant);
    const notUsable = (message: string): NamedModel => ({
      issues: [
        {
          path,
          code: 'not_found',
          message,
          expected: 'the id of a completed train job',
          received: JSON.stringify(jobId),
        },
      ],
      cfg: null,
      label,
    });
    if (!meta) return notUsable(`job ${jobId} does not exist`);
    if (meta.type !== 'train') return notUsable(`job ${jobId} is an ${meta.type} job`);
    const [hasModel, configRaw] = await Promise.all([
      this.artifacts.exists(jobId, ARTIFACTS.model),
      this.artifacts.get(jobId, ARTIFACTS.config).catch(() => null),
    ]);
    if (!hasModel || !configRaw) {
      const view = await this.records.view(meta);
      return notUsable(`job ${jobId} has no trained model (state ${view.state})`);
    }
    let cfg: ConfigArtifact | null = null;
    try {
      const r = ConfigArtifactSchema.safeParse(JSON.parse(configRaw.toString('utf8')));
      cfg = r.success ? r.data : null;
    } catch {
      cfg = null;
    }
    return { issues: [], cfg, label };
  }

  /** A registered model version (models.ts): 400 naming `path` when the reference does not resolve. */
  private async registeredModel(ref: string, path: string, tenant: string): Promise<NamedModel> {
    const r = await resolveModelRef(this.redis, this.keys, tenant, ref);
    if (!isResolved(r)) {
      const issue: ValidationIssue = {
        path,
        code: r.kind === 'syntax' ? 'invalid_format' : 'not_found',
        message: modelRefProblemMessage(r),
        expected: MODEL_REF_EXPECTED,
        received: JSON.stringify(ref),
      };
      return { issues: [issue], cfg: null, label: `model ${ref}` };
    }
    const { ref: version, record } = r;
    return {
      issues: [],
      cfg: { jobId: record.jobId, model: record.model },
      version,
      label: `model ${version.name}@${version.version}`,
    };
  }

  /** The trained model a payload names, if any: an earlier job's or a registered version. */
  private namedModel(ref: PayloadModelRef, tenant: string): Promise<NamedModel> {
    return 'jobId' in ref
      ? this.trainedModel(ref.jobId, ref.field, tenant)
      : this.registeredModel(ref.registered, ref.field, tenant);
  }

  private async checkTrainRefs(p: PayloadOf<'train'>, tenant: string): Promise<RefCheck> {
    const issues: ValidationIssue[] = [];
    const datasetId = p.data.datasetId;
    const dataset = datasetId ? await this.datasets.meta(datasetId, tenant) : null;
    if (datasetId) issues.push(...this.datasetIssues(datasetId, dataset, p.model, p.training.validationSplit));
    const ref = modelRefOf('train', p);
    const from = ref && (await this.namedModel(ref, tenant));
    if (from) {
      issues.push(...from.issues);
      // The model to continue must have the shape of the one trained.
      const cfg = from.cfg;
      if (cfg) {
        for (const f of architectureMismatches(p.model, cfg.model)) {
          issues.push({
            path: `model.${f}`,
            code: 'custom',
            message: `must match the model of ${from.label}`,
            expected: JSON.stringify(cfg.model[f]),
            received: JSON.stringify(p.model[f]),
          });
        }
      }
    }
    return {
      issues,
      costed: { type: 'train', payload: p, dataset: dataset ?? undefined },
      modelVersion: from?.version,
    };
  }

  private async checkInferRefs(p: PayloadOf<'infer'>, tenant: string): Promise<RefCheck> {
    const ref = modelRefOf('infer', p);
    if (!ref) {
      const model = inlineModelOf(p)?.config;
      return { issues: [], costed: model ? { type: 'infer', payload: p, model } : null };
    }
    const { issues, cfg, label, version } = await this.namedModel(ref, tenant);
    if (issues.length) return { issues, costed: null };
    // The input width must match the trained model's.
    const width = p.inputs[0]?.[0]?.length;
    if (cfg && width !== undefined && width !== cfg.model.inputSize) {
      const issue: ValidationIssue = {
        path: 'inputs',
        code: 'custom',
        message: `the model of ${label} reads ${cfg.model.inputSize} features per step`,
        expected: `shape [B, T, ${cfg.model.inputSize}]`,
        received: `${width} features per step`,
      };
      return { issues: [issue], costed: null };
    }
    return { issues: [], costed: cfg ? { type: 'infer', payload: p, model: cfg.model } : null, modelVersion: version };
  }

  async get(id: string, tenant: string): Promise<JobView> {
    return this.records.view(await this.records.metaOr404(id, tenant));
  }

  /**
   * Newest first, filtered by type, name, tags (the search index, job-index.ts), creation time and
   * state. The cursor is opaque: base64url of `<createdAt>:<id>` of the last entry looked at.
   */
  async list(query: unknown, tenant: string): Promise<JobList> {
    const q = validate(ListQuerySchema, query);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { state, limit, cursor, type, name, tag, since } = q.value;
    const after = cursor ? parseCursor(cursor) : null;
    const keys = searchKeys(this.keys, tenant, { type, name, tags: tag });
    // One set and no state: every entry walked is an item, a page and one more tell whether there is more.
    const chunk = state || keys.length > 1 ? 100 : limit + 1;
    const walk = walkJobIndex(this.redis, { keys, maxScore: after?.score ?? '+inf', minScore: since ?? '-inf', chunk });
    const items: JobView[] = [];
    let last: { score: number; id: string } | null = null;
    let scanned = 0;
    for await (const walked of walk) {
      const entries = walked.filter((e) => !servedBefore(e, after));
      const views = await this.viewsOf(
        entries.filter((e) => e.match).map((e) => e.id),
        tenant,
      );
      for (const e of entries) {
        // A candidate beyond a full page: there is more.
        if (items.length >= limit) return { items, nextCursor: last && cursorOf(last) };
        last = e;
        const view = e.match ? views.get(e.id) : undefined;
        if (view && (!state || view.state === state)) items.push(view);
        // A filtered listing looks at a bounded number of entries per request; the cursor goes on.
        if (++scanned >= MAX_SCANNED) return { items, nextCursor: cursorOf(last) };
      }
    }
    return { items, nextCursor: null };
  }

  /** The views of the tenant's jobs among `ids`, by id. */
  private async viewsOf(ids: string[], tenant: string): Promise<Map<string, JobView>> {
    const views = await this.records.views(ids, tenant);
    return new Map(views.filter((v): v is JobView => v !== null).map((v) => [v.id, v]));
  }

  /**
   * Cancels a job. Not started: removed from its queue and marked cancelled at once. Running: a
   * cancel flag the worker polls (CANCEL_POLL_MS) and acts on between batches. Finished: 409.
   */
  async cancel(id: string, tenant: string): Promise<{ status: number; body: CancelResponse }> {
    const meta = await this.records.metaOr404(id, tenant);
    const view = await this.records.view(meta);
    if (isTerminal(view.state)) {
      throw new ApiError(409, 'not_cancellable', `job ${id} is already ${view.state}`);
    }
    const request: CancelRequest = { requestedAt: Date.now() };
    await this.redis.set(this.keys.cancel(id), JSON.stringify(request));
    const removed = await this.queues.removeIfNotStarted(meta.queue as QueueName, id);
    const gone = removed || (await this.queues.getJob(meta.queue as QueueName, id)) === null;
    if (gone) {
      await this.events.append(id, {
        type: 'state',
        at: Date.now(),
        state: 'cancelled',
        error: { code: 'cancelled', message: 'cancelled before it started', retryable: false },
      });
      await this.quota.release(tenant, id);
      // No worker will see this job end: its records follow the failed jobs' retention from here.
      await expireJobRecords(this.redis, this.keys, id, this.config.jobPolicy.keepFailedSec);
      return { status: 200, body: { id, state: 'cancelled', cancelRequested: false } };
    }
    return { status: 202, body: { id, state: 'running', cancelRequested: true } };
  }

  /** Meta of a job for the event and artifact routes. */
  meta(id: string, tenant: string): Promise<JobMeta> {
    return this.records.metaOr404(id, tenant);
  }

  view(meta: JobMeta): Promise<JobView> {
    return this.records.view(meta);
  }

  isTerminalState(s: JobState): boolean {
    return isTerminal(s);
  }
}
