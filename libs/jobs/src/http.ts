/**
 * Shapes of the REST API's responses (apps/api), shared with the client and the OpenAPI document.
 * Request bodies are the payload schemas of payloads.ts.
 */
import { z } from 'zod';
import {
  DatasetMetaSchema,
  JOB_STATES,
  JOB_TYPES,
  JobErrorSchema,
  ProgressEventSchema,
  WorkerHeartbeatSchema,
} from './events';
import { JobNameSchema, JobPrioritySchema, TagsSchema } from './job-options';
import { DEVICES } from './payloads';
import { QUEUE_NAMES } from './queues';
import { ValidationIssueSchema } from './validation';
import { StoredArchitectureSchema } from './worker-contract';

export const JobLinksSchema = z.strictObject({
  self: z.string(),
  events: z.string(),
  artifacts: z.string(),
});
export type JobLinks = z.infer<typeof JobLinksSchema>;

/** 202 of POST /v1/jobs/train and /v1/jobs/infer (200 with the same fields on an idempotent repeat). */
export const SubmitResponseSchema = z.strictObject({
  id: z.uuid(),
  state: z.enum(JOB_STATES),
  links: JobLinksSchema,
  /**
   * Accepted, but no live worker serves the job's queue and only some workers can: what it waits
   * for, e.g. "a live worker serving the gpu queue (hardware GPU backend)". Absent otherwise.
   */
  waitingFor: z.string().optional(),
});
export type SubmitResponse = z.infer<typeof SubmitResponseSchema>;

/** GET /v1/jobs/:id, and the items of GET /v1/jobs. */
export const JobViewSchema = z.strictObject({
  id: z.string(),
  type: z.enum(JOB_TYPES),
  state: z.enum(JOB_STATES),
  queue: z.string(),
  device: z.enum(DEVICES),
  createdAt: z.number().int(),
  startedAt: z.number().int().nullable(),
  finishedAt: z.number().int().nullable(),
  /** Attempts started so far (BullMQ's attemptsMade, plus the running one). */
  attempts: z.number().int(),
  maxAttempts: z.number().int(),
  /** A cancel was asked for this job and it did not end `cancelled`: still stopping, or it completed (or failed) before the cancel reached it. */
  cancelRequested: z.boolean(),
  /** The last metric point. */
  progress: ProgressEventSchema.nullable(),
  /** The return value: summary and artifact names for train, outputs and states for infer. */
  result: z.unknown().nullable(),
  error: JobErrorSchema.nullable(),
  links: JobLinksSchema,
  /** Bytes of the payload as queued (null once the queue's record is gone). A view never carries the payload. */
  payloadBytes: z.number().int().nullable().optional(),
  /** The name, tags and priority (1 highest .. 10 lowest) it was submitted with. */
  name: JobNameSchema.optional(),
  tags: TagsSchema.optional(),
  priority: JobPrioritySchema.optional(),
  /** While `queued`: what it was found waiting for at submission (see `SubmitResponse.waitingFor`). */
  waitingFor: z.string().optional(),
  /** The registered model version the payload named, as resolved at submission. */
  modelVersion: z.strictObject({ name: z.string(), version: z.number().int() }).optional(),
});
export type JobView = z.infer<typeof JobViewSchema>;

/** GET /v1/jobs: newest first; pass `nextCursor` as `cursor` for the next page (null: no more). */
export const JobListSchema = z.strictObject({
  items: z.array(JobViewSchema),
  nextCursor: z.string().nullable(),
});
export type JobList = z.infer<typeof JobListSchema>;

/** 200 of POST /v1/jobs/infer?wait=true when the job ended in time. */
export const InferWaitResponseSchema = z.strictObject({
  id: z.string(),
  state: z.enum(JOB_STATES),
  result: z.unknown().nullable(),
  error: JobErrorSchema.nullable(),
  links: JobLinksSchema,
});
export type InferWaitResponse = z.infer<typeof InferWaitResponseSchema>;

/** DELETE /v1/jobs/:id: `cancelled` at once for a queued job, `running` + cancelRequested otherwise. */
export const CancelResponseSchema = z.strictObject({
  id: z.string(),
  state: z.enum(JOB_STATES),
  cancelRequested: z.boolean(),
});
export type CancelResponse = z.infer<typeof CancelResponseSchema>;

export const ArtifactListSchema = z.strictObject({
  jobId: z.string(),
  items: z.array(
    z.strictObject({ name: z.string(), size: z.number().int(), modifiedAt: z.number().int(), url: z.string() }),
  ),
});
export type ArtifactList = z.infer<typeof ArtifactListSchema>;

export const DatasetViewSchema = DatasetMetaSchema.omit({ tenant: true });
export type DatasetView = z.infer<typeof DatasetViewSchema>;

/** GET /v1/datasets: the tenant's datasets, newest first, paged as `JobList`. */
export const DatasetListSchema = z.strictObject({
  items: z.array(DatasetViewSchema),
  nextCursor: z.string().nullable(),
});
export type DatasetList = z.infer<typeof DatasetListSchema>;

const ModelVersionNumber = z.number().int().min(1);

/** A registered model version (POST /v1/models, GET /v1/models/:model/versions/:version). */
export const ModelVersionViewSchema = z.strictObject({
  name: z.string(),
  version: ModelVersionNumber,
  /** The aliases pointing at this version. */
  aliases: z.array(z.string()),
  /** The train job it was copied from (which may be gone since). */
  jobId: z.string(),
  description: z.string().optional(),
  tags: z.record(z.string(), z.string()).optional(),
  createdAt: z.number().int(),
  /** The architecture it was trained with. */
  model: StoredArchitectureSchema,
  metrics: z.strictObject({ finalLoss: z.number().nullable(), finalValLoss: z.number().nullable() }).optional(),
  /** Its files, each downloadable at `url`: `model.safetensors` loads in PyTorch (`safetensors.torch.load_file`). */
  files: z.array(z.strictObject({ name: z.string(), size: z.number().int(), url: z.string() })),
  /** The reference to give as `model` (infer) or `from` (train). */
  ref: z.string(),
});
export type ModelVersionView = z.infer<typeof ModelVersionViewSchema>;

/** GET /v1/models/:model: every version, oldest first, and the aliases. */
export const ModelViewSchema = z.strictObject({
  name: z.string(),
  createdAt: z.number().int(),
  /** The highest registered version (what `name` alone resolves to). */
  latestVersion: ModelVersionNumber,
  /** Alias -> version. */
  aliases: z.record(z.string(), ModelVersionNumber),
  versions: z.array(ModelVersionViewSchema),
});
export type ModelView = z.infer<typeof ModelViewSchema>;

/** GET /v1/models: the tenant's models, newest first, paged as `JobList`. */
export const ModelListSchema = z.strictObject({
  items: z.array(
    z.strictObject({
      name: z.string(),
      createdAt: z.number().int(),
      latestVersion: ModelVersionNumber,
      versionCount: z.number().int(),
      aliases: z.record(z.string(), ModelVersionNumber),
    }),
  ),
  nextCursor: z.string().nullable(),
});
export type ModelList = z.infer<typeof ModelListSchema>;

/** PUT /v1/models/:model/aliases/:alias. */
export const ModelAliasViewSchema = z.strictObject({
  name: z.string(),
  alias: z.string(),
  version: ModelVersionNumber,
});
export type ModelAliasView = z.infer<typeof ModelAliasViewSchema>;

export const WorkerListSchema = z.strictObject({
  items: z.array(WorkerHeartbeatSchema),
});
export type WorkerList = z.infer<typeof WorkerListSchema>;

export const HealthSchema = z.strictObject({
  status: z.enum(['ok', 'unavailable']),
  redis: z.enum(['up', 'down']),
});
export type Health = z.infer<typeof HealthSchema>;

/** GET /ready: the artifact store as its `probe` found it. */
export const StoreReadinessSchema = z.strictObject({
  status: z.enum(['up', 'down']),
  kind: z.enum(['file', 's3']).nullable(),
  /** How long the probe took (a HEAD of the bucket, or a statfs of the directory). */
  latencyMs: z.number().int().nullable(),
  /** Free and total bytes of the file system of a file store; null for S3. */
  freeBytes: z.number().nullable(),
  totalBytes: z.number().nullable(),
  /** Why it is down. */
  error: z.string().nullable(),
});

/** GET /ready: /health plus Redis's latency, the artifact store, and which queues a live worker serves. */
export const ReadinessSchema = HealthSchema.extend({
  /** The last PING's round trip, or the wait of the one in flight when longer; null before the first. */
  redisLatencyMs: z.number().int().nullable(),
  /** When Redis last answered (ms since the epoch). */
  redisAnsweredAt: z.number().int().nullable(),
  store: StoreReadinessSchema,
  /** Per queue, how many live workers (by their heartbeats) consume it; null while Redis is down. */
  queues: z.record(z.enum(QUEUE_NAMES), z.strictObject({ workers: z.number().int(), served: z.boolean() })).nullable(),
});
export type Readiness = z.infer<typeof ReadinessSchema>;

/** Codes of API error bodies. */
export const API_ERROR_CODES = [
  'invalid_request',
  'invalid_json',
  'payload_too_large',
  'unsupported_media_type',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'idempotency_key_reused',
  'not_cancellable',
  'rate_limited',
  'quota_exceeded',
  'unavailable',
  'internal',
] as const;

/** GET /v1/admin/overview (admin key only): queues, workers and jobs across every tenant. */
export const AdminOverviewSchema = z.strictObject({
  queues: z.record(z.string(), z.record(z.string(), z.number().int())),
  workers: z.array(WorkerHeartbeatSchema),
  tenants: z.array(
    z.strictObject({
      tenant: z.string(),
      /** Jobs in the tenant's index (every state, until retention removes them). */
      jobs: z.number().int(),
      /** Queued or running jobs counted against `MAX_QUEUED_JOBS_PER_TENANT`. */
      liveJobs: z.number().int(),
      datasets: z.number().int(),
      /** The newest jobs of the tenant, newest first. */
      recent: z.array(
        z.strictObject({
          id: z.string(),
          type: z.enum(JOB_TYPES),
          state: z.enum(JOB_STATES),
          createdAt: z.number().int(),
        }),
      ),
    }),
  ),
});
export type AdminOverview = z.infer<typeof AdminOverviewSchema>;

/** Every 4xx/5xx body. `issues` lists each bad field of a 400. Never a stack trace. */
export const ErrorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.enum(API_ERROR_CODES),
    message: z.string(),
    issues: z.array(ValidationIssueSchema).optional(),
  }),
});
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Header carrying the idempotency key of a submission. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';
/** How long an idempotency key is remembered. */
export const IDEMPOTENCY_TTL_SEC = 24 * 3600;
