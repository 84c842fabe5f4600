/**
 * Submitting, listing and cancelling jobs. The api only produces jobs: it validates the payload,
 * checks what the payload refers to (dataset, earlier job) exists, and hands the job to
 * `planJob` + `produceJob` of @relu-lstm/jobs.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  ARTIFACTS,
  ConfigArtifactSchema,
  architectureMismatches,
  type DatasetMeta,
  IDEMPOTENCY_TTL_SEC,
  JOB_STATES,
  expireJobRecords,
  payloadSchema,
  planJob,
  produceJob,
  validate,
  isTerminal,
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

const datasetGone = (datasetId: string): ValidationIssue => ({
  path: 'data.datasetId',
  code: 'not_found',
  message: `dataset ${datasetId} does not exist`,
  expected: 'the id of an uploaded dataset',
  received: JSON.stringify(datasetId),
});

export const ListQuerySchema = PageQuerySchema.extend({ state: z.enum(JOB_STATES).optional() });

/** The issues of what a payload refers to, and the job as the cost estimate sees it (null: cannot be sized). */
interface RefCheck {
  issues: ValidationIssue[];
  costed: CostedJob | null;
}

/** Most index entries one list request looks at when filtering by state. */
const MAX_SCANNED = 1000;

@Injectable()
export class JobsService {
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
   * Everything a submission checks before anything is written: the schema, what the payload refers
   * to (datasets, earlier jobs) and its estimated engine memory against LIMIT_MAX_JOB_MEMORY_MB
   * (cost.ts). The sweeps route checks each trial with it.
   */
  async checkPayload<T extends JobType>(
    type: T,
    body: unknown,
    tenant: string,
  ): Promise<{ ok: true; value: PayloadOf<T> } | { ok: false; issues: ValidationIssue[] }> {
    const parsed = validate(payloadSchema(type, this.contract), body);
    if (!parsed.ok) return parsed;
    const payload = parsed.value as PayloadOf<T>;
    const refs = await this.refChecks[type](payload, tenant);
    if (refs.issues.length) return { ok: false, issues: refs.issues };
    const costIssue = refs.costed && jobCostIssue(refs.costed, this.contract.limits.maxJobMemoryMb);
    if (costIssue) return { ok: false, issues: [costIssue] };
    return { ok: true, value: payload };
  }

  async submit<T extends JobType>(type: T, body: unknown, tenant: string, idempotencyKey?: string): Promise<Submitted> {
    const checked = await this.checkPayload(type, body, tenant);
    if (!checked.ok) throw ApiError.invalid(checked.issues);
    const payload = checked.value;

    let idemKey: string | null = null;
    const id = randomUUID();
    if (idempotencyKey !== undefined) {
      if (!IDEMPOTENCY_KEY.test(idempotencyKey)) {
        throw ApiError.invalid([
          {
            path: 'Idempotency-Key',
            code: 'invalid_format',
            message: 'invalid header',
            expected: '1 to 255 printable ASCII characters',
            received: `${idempotencyKey.length} characters`,
          },
        ]);
      }
      idemKey = this.keys.idempotency(tenant, idempotencyKey);
      const bodyHash = createHash('sha256')
        .update(`${type}\n${canonicalJson(payload)}`)
        .digest('hex');
      const record = JSON.stringify({ id, type, bodyHash });
      const set = await this.redis.set(idemKey, record, 'EX', IDEMPOTENCY_TTL_SEC, 'NX');
      if (set !== 'OK') {
        const prevRaw = await this.redis.get(idemKey);
        const prev = IdempotencyRecord.safeParse(JSON.parse(prevRaw ?? 'null'));
        if (prev.success) {
          if (prev.data.bodyHash !== bodyHash || prev.data.type !== type) {
            throw new ApiError(
              422,
              'idempotency_key_reused',
              'this Idempotency-Key was used with a different request body or route',
            );
          }
          const meta = await this.records.meta(prev.data.id, tenant);
          if (meta) {
            const view = await this.records.view(meta);
            return { replayed: true, body: { id: meta.id, state: view.state, links: linksOf(meta.id) }, meta };
          }
          // No meta: the first request is still being processed (its key is seconds old), or its job
          // is past retention (docs/worker.md "Retention"), and the key starts over with this request.
          if ((await this.redis.ttl(idemKey)) > IDEMPOTENCY_TTL_SEC - IDEMPOTENCY_IN_FLIGHT_SEC) throw inFlight();
        }
        // Expired between SET and GET, or its job is gone: take the key now, unless a concurrent
        // retry took it since the GET (a plain SET let both submit, two jobs for one key).
        if (
          (await this.redis.eval(RETAKE_IDEMPOTENCY_KEY, 1, idemKey, prevRaw ?? '', record, IDEMPOTENCY_TTL_SEC)) !== 1
        )
          throw inFlight();
      }
    }

    const plan = planJob(type, payload, { limits: this.contract.limits, tenant, id, policy: this.config.jobPolicy });
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
    return { replayed: false, body: { id: plan.id, state: 'queued', links: linksOf(plan.id) }, meta: plan.meta };
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
   * worker reports it then).
   */
  async trainedModel(
    jobId: string,
    path: string,
    tenant: string,
  ): Promise<{ issues: ValidationIssue[]; cfg: ConfigArtifact | null }> {
    const meta = await this.records.meta(jobId, tenant);
    const notUsable = (message: string) => ({
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
    return { issues: [], cfg };
  }

  private async checkTrainRefs(p: PayloadOf<'train'>, tenant: string): Promise<RefCheck> {
    const issues: ValidationIssue[] = [];
    const datasetId = p.data.datasetId;
    const dataset = datasetId ? await this.datasets.meta(datasetId, tenant) : null;
    if (datasetId) issues.push(...this.datasetIssues(datasetId, dataset, p.model, p.training.validationSplit));
    if (p.fromJob) {
      const from = await this.trainedModel(p.fromJob, 'fromJob', tenant);
      issues.push(...from.issues);
      // The model to continue must have the shape of the one trained.
      const cfg = from.cfg;
      if (cfg) {
        for (const f of architectureMismatches(p.model, cfg.model)) {
          issues.push({
            path: `model.${f}`,
            code: 'custom',
            message: `must match the model of job ${p.fromJob}`,
            expected: JSON.stringify(cfg.model[f]),
            received: JSON.stringify(p.model[f]),
          });
        }
      }
    }
    return { issues, costed: { type: 'train', payload: p, dataset: dataset ?? undefined } };
  }

  private async checkInferRefs(p: PayloadOf<'infer'>, tenant: string): Promise<RefCheck> {
    if (!p.modelJobId) {
      const model = p.model?.config;
      return { issues: [], costed: model ? { type: 'infer', payload: p, model } : null };
    }
    const { issues, cfg } = await this.trainedModel(p.modelJobId, 'modelJobId', tenant);
    if (issues.length) return { issues, costed: null };
    // The input width must match the trained model's.
    const width = p.inputs[0]?.[0]?.length;
    if (cfg && width !== undefined && width !== cfg.model.inputSize) {
      const issue: ValidationIssue = {
        path: 'inputs',
        code: 'custom',
        message: `the model of job ${p.modelJobId} reads ${cfg.model.inputSize} features per step`,
        expected: `shape [B, T, ${cfg.model.inputSize}]`,
        received: `${width} features per step`,
      };
      return { issues: [issue], costed: null };
    }
    return { issues: [], costed: cfg ? { type: 'infer', payload: p, model: cfg.model } : null };
  }

  async get(id: string, tenant: string): Promise<JobView> {
    return this.records.view(await this.records.metaOr404(id, tenant));
  }

  /** Newest first. The cursor is opaque: base64url of `<createdAt>:<id>` of the last item returned. */
  async list(query: unknown, tenant: string): Promise<JobList> {
    const q = validate(ListQuerySchema, query);
    if (!q.ok) throw ApiError.invalid(q.issues);
    const { state, limit, cursor } = q.value;
    const after = cursor ? parseCursor(cursor) : null;
    const maxScore = after ? String(after.score) : '+inf';
    const index = this.keys.jobIndex(tenant);
    const items: JobView[] = [];
    let last: { score: number; id: string } | null = null;
    let scanned = 0;
    let offset = 0;
    const chunk = state ? 100 : limit + 1;
    for (;;) {
      const raw = await this.redis.zrevrangebyscore(index, maxScore, '-inf', 'WITHSCORES', 'LIMIT', offset, chunk);
      offset += raw.length / 2;
      const entries: Array<{ score: number; id: string }> = [];
      for (let i = 0; i < raw.length; i += 2) {
        const e = { id: raw[i], score: Number(raw[i + 1]) };
        if (!servedBefore(e, after)) entries.push(e);
      }
      // One MGET for the chunk's metas and its views in parallel, instead of round trips per job.
      const metas = await this.records.metas(
        entries.map((e) => e.id),
        tenant,
      );
      const views = await Promise.all(metas.map((m) => (m ? this.records.view(m) : Promise.resolve(null))));
      for (let i = 0; i < entries.length; i++) {
        // A candidate beyond a full page: there is more.
        if (items.length >= limit) return { items, nextCursor: last && cursorOf(last) };
        last = entries[i];
        const view = views[i];
        if (view && (!state || view.state === state)) items.push(view);
        // Filtering by state looks at a bounded number of jobs per request; the cursor goes on.
        if (++scanned >= MAX_SCANNED) return { items, nextCursor: cursorOf(last) };
      }
      if (raw.length / 2 < chunk) return { items, nextCursor: null };
    }
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
