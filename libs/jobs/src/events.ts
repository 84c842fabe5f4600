/**
 * What a job produces while and after it runs: progress points, the events of its stream, its
 * result and its error. Written by the worker, read by the api and the client.
 */
import { z } from 'zod';
import { JobNameSchema, JobPrioritySchema, TagsSchema } from './job-options';
import { DEVICES } from './payloads';

/** Job types; also the BullMQ job name. What each one is: `JOB_TYPE_SPECS` (job-types.ts). */
export const JOB_TYPES = ['train', 'infer'] as const;
export type JobType = (typeof JOB_TYPES)[number];

/** Public job states. BullMQ's waiting/delayed/prioritized are all `queued`, active is `running`. */
export const JOB_STATES = ['queued', 'running', 'completed', 'failed', 'cancelled'] as const;
export type JobState = (typeof JOB_STATES)[number];
export const TERMINAL_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: JobState): boolean => TERMINAL_STATES.includes(s);

/**
 * One metric point. `epoch`: 0-based index of the epoch it belongs to. `step`: optimizer steps done
 * since the job started (monotonic across resumes). `valLoss` is null except on the point that ends
 * an epoch with a validation split; `gradNorm` is the global norm before clipping (null if not
 * computed). Also the value given to BullMQ's `job.updateProgress`.
 */
export const ProgressEventSchema = z.strictObject({
  epoch: z.number().int().min(0),
  step: z.number().int().min(0),
  loss: z.number(),
  valLoss: z.number().nullable(),
  gradNorm: z.number().nullable(),
  samplesPerSec: z.number().min(0),
  elapsedMs: z.number().min(0),
  /** Set on the point that closes an epoch. */
  epochEnd: z.boolean().optional(),
  /** Current learning rate (changes after a divergence rollback). */
  learningRate: z.number().optional(),
});
export type ProgressEvent = z.infer<typeof ProgressEventSchema>;

/**
 * Reasons a job fails. `invalid_payload`: the payload passed the schema but cannot run (state dict
 * names, dataset contents...). `not_found`: a dataset, model or artifact it refers to is gone.
 * `diverged`: non-finite loss or gradient (details: epoch, step). `cancelled`: DELETE /v1/jobs/:id.
 * `timeout`: over its wall-clock limit. `resource_exhausted`: over the engine's memory budget
 * (`LIMIT_MAX_JOB_MEMORY_MB`: estimate, V8 heap or resident set; details: what ran out, the bound). `backend_unavailable`: the device it needs failed to start.
 * `internal`: anything else (retried by BullMQ when attempts remain).
 */
export const ERROR_CODES = [
  'invalid_payload',
  'not_found',
  'diverged',
  'cancelled',
  'timeout',
  'resource_exhausted',
  'backend_unavailable',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

export const JobErrorSchema = z.strictObject({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  /** Whether a retry could help; permanent errors are thrown as BullMQ `UnrecoverableError`. */
  retryable: z.boolean().default(false),
  /** e.g. `{ epoch, step }` for diverged, `{ field }` for invalid_payload. */
  details: z.record(z.string(), z.unknown()).optional(),
});
export type JobError = z.output<typeof JobErrorSchema>;
export type JobErrorInput = z.input<typeof JobErrorSchema>;

/** Whether each code is permanent: the worker throws those as `UnrecoverableError`, never retried. */
const PERMANENT = {
  invalid_payload: true,
  not_found: true,
  diverged: true,
  cancelled: true,
  timeout: true,
  resource_exhausted: true,
  backend_unavailable: false,
  internal: false,
} as const satisfies Record<ErrorCode, boolean>;

/** Error codes that must not be retried: the worker throws these as `UnrecoverableError`. */
export const PERMANENT_ERROR_CODES: readonly ErrorCode[] = ERROR_CODES.filter((c) => PERMANENT[c]);
/** The worker fails a BullMQ job with `new Error(encodeJobError(e))` (or `UnrecoverableError`), so
 * `job.failedReason` holds the JSON of a `JobError`. */
export function encodeJobError(e: JobErrorInput): string {
  return JSON.stringify(JobErrorSchema.parse(e));
}

/** Reads `job.failedReason`; anything that is not an encoded `JobError` becomes `internal`. */
export function decodeJobError(failedReason: string | undefined | null): JobError {
  if (failedReason) {
    try {
      const r = JobErrorSchema.safeParse(JSON.parse(failedReason));
      if (r.success) return r.data;
    } catch {
      /* not JSON: fall through */
    }
  }
  return { code: 'internal', message: failedReason || 'unknown error', retryable: false };
}

/** Names of the artifacts a completed train job leaves (see the issue and docs/api.md). */
export const ARTIFACTS = {
  model: 'model.safetensors',
  state: 'state.json',
  metrics: 'metrics.csv',
  config: 'config.json',
} as const;

export const TrainResultSchema = z.strictObject({
  epochs: z.number().int().min(0),
  steps: z.number().int().min(0),
  finalLoss: z.number().nullable(),
  finalValLoss: z.number().nullable(),
  samplesPerSec: z.number().min(0),
  elapsedMs: z.number().min(0),
  /** Epoch the last attempt resumed from (null: started fresh). */
  resumedFromEpoch: z.number().int().min(0).nullable(),
  /** tfjs backend the job ran on: `tensorflow`, `wasm`, `cpu`. */
  backend: z.string(),
  gpu: z.boolean(),
  /** Names of the artifacts written, e.g. `model.safetensors`; never the weights themselves. */
  artifacts: z.array(z.string()),
  /** True when the final loss is not finite or grew past DIVERGED_LOSS_FACTOR times the first epoch's (warning event `loss_diverged`). */
  diverged: z.boolean().optional(),
});
export type TrainResult = z.infer<typeof TrainResultSchema>;

export const InferResultSchema = z.strictObject({
  /** `[B, T, outputSize]` with head `manyToMany`, `[B, 1, outputSize]` with `lastStep`; absent when
   * they were too many for the result (`INFER_INLINE_OUTPUTS_MAX`): then see `outputsArtifact`. */
  outputs: z.array(z.array(z.array(z.number()))).optional(),
  /** Where outputs too big for the result went: the job's artifact `name` (F32 tensor `outputs`), its shape, its path on the api. */
  outputsArtifact: z.strictObject({ name: z.string(), shape: z.array(z.number().int()), url: z.string() }).optional(),
  /** `[L*D, B, H]`. */
  hN: z.array(z.array(z.array(z.number()))),
  cN: z.array(z.array(z.array(z.number()))),
  backend: z.string(),
  gpu: z.boolean(),
  elapsedMs: z.number().min(0),
});
export type InferResult = z.infer<typeof InferResultSchema>;

/** Every event carries `at`, milliseconds since the epoch when it was written. */
const at = z.number().int().min(0);

export const StateEventSchema = z.strictObject({
  type: z.literal('state'),
  at,
  state: z.enum(JOB_STATES),
  /** 1-based attempt number (`running` events). */
  attempt: z.number().int().min(1).optional(),
  /** Id of the worker (heartbeat id) that took the job (`running` events). */
  workerId: z.string().optional(),
  /** On `completed`: the job's return value. */
  result: z.union([TrainResultSchema, InferResultSchema]).optional(),
  /** On `failed` and `cancelled`. */
  error: JobErrorSchema.optional(),
});
export const MetricEventSchema = ProgressEventSchema.extend({ type: z.literal('metric'), at });
export const LogEventSchema = z.strictObject({
  type: z.literal('log'),
  at,
  level: z.enum(['info', 'warning', 'error']),
  message: z.string(),
  /** Machine-readable kind, e.g. `checkpoint`, `resumed`, `attempt_failed`, `divergence_rollback`. */
  code: z.string().optional(),
  data: z.record(z.string(), z.unknown()).optional(),
});

/** `code` of the log event the worker appends on each divergence rollback (its `data`: `DivergenceRollback`). */
export const DIVERGENCE_ROLLBACK = 'divergence_rollback';

/**
 * A divergence rollback: at `epoch`/`step` the `quantity` (loss or gradient norm) was `value`
 * (non-finite, as a string: "NaN", "Infinity"); the run went back to `to` (the last checkpoint of
 * the run, the checkpoint the attempt resumed from, or the start) and continues with
 * `learningRate` = `previousLearningRate` * DIVERGENCE_LR_FACTOR. Rollback `retry` of `retries`.
 */
export const DivergenceRollbackSchema = z.strictObject({
  epoch: z.number().int().min(0),
  step: z.number().int().min(0),
  /** `weights`: the gradients were finite but an update left a weight or optimizer slot non-finite. */
  quantity: z.enum(['loss', 'gradient', 'weights']),
  value: z.string(),
  to: z.strictObject({
    epoch: z.number().int().min(0),
    step: z.number().int().min(0),
    stepInEpoch: z.number().int().min(0),
    source: z.enum(['checkpoint', 'resumed', 'start']),
  }),
  previousLearningRate: z.number().positive(),
  learningRate: z.number().positive(),
  retry: z.number().int().min(1),
  retries: z.number().int().min(1),
});
export type DivergenceRollback = z.infer<typeof DivergenceRollbackSchema>;

/** On a sweep's stream: one of its trials ended (`metric`: its ranking metric, null if none). */
export const TrialEventSchema = z.strictObject({
  type: z.literal('trial'),
  at,
  trialId: z.string(),
  state: z.enum(JOB_STATES),
  metric: z.number().nullable(),
  params: z.record(z.string(), z.unknown()),
  error: JobErrorSchema.optional(),
});
export type TrialEvent = z.infer<typeof TrialEventSchema>;

/** One entry of a job's (or a sweep's) event stream. */
export const JobEventSchema = z.discriminatedUnion('type', [
  StateEventSchema,
  MetricEventSchema,
  LogEventSchema,
  TrialEventSchema,
]);
export type StateEvent = z.infer<typeof StateEventSchema>;
export type MetricEvent = z.infer<typeof MetricEventSchema>;
export type LogEvent = z.infer<typeof LogEventSchema>;
export type JobEvent = z.infer<typeof JobEventSchema>;
/** A stream entry: Redis stream id (`<ms>-<seq>`, also the SSE id) and the event. */
export interface StoredEvent {
  id: string;
  event: JobEvent;
}

export const isTerminalEvent = (e: JobEvent): e is StateEvent => e.type === 'state' && isTerminal(e.state);

/**
 * A worker's heartbeat, written every `HEARTBEAT_INTERVAL_MS` under `keys.worker(id)` with a TTL of
 * `HEARTBEAT_TTL_MS`, and listed in `keys.workers()` (see keys.ts).
 */
export const WorkerHeartbeatSchema = z.strictObject({
  id: z.string().min(1).max(200),
  /** tfjs backend: `tensorflow` (tfjs-node or tfjs-node-gpu), `wasm` or `cpu`. */
  backend: z.string(),
  gpu: z.boolean(),
  /** Device name, e.g. the GPU's model or `cpu`. */
  device: z.string(),
  host: z.string(),
  pid: z.number().int(),
  queues: z.array(z.string()),
  /** Id of the job it is running, or null when idle. */
  currentJobId: z.string().nullable(),
  startedAt: at,
  at,
  version: z.string().optional(),
});
export type WorkerHeartbeat = z.infer<typeof WorkerHeartbeatSchema>;
export const HEARTBEAT_INTERVAL_MS = 5_000;
export const HEARTBEAT_TTL_MS = 15_000;

/** Written by the producer under `keys.jobMeta(id)` before the job is queued; never changes. */
export const JobMetaSchema = z.strictObject({
  id: z.string(),
  type: z.enum(JOB_TYPES),
  queue: z.string(),
  device: z.enum(DEVICES),
  tenant: z.string(),
  createdAt: at,
  /** The job's options (job-options.ts), as submitted; absent on jobs queued before they existed. */
  name: JobNameSchema.optional(),
  tags: TagsSchema.optional(),
  priority: JobPrioritySchema.optional(),
  /** Set at submission when no live worker served the job's queue and it needs one that can (`waitingForOf`). */
  waitingFor: z.string().optional(),
  /** The registered model version the payload named (`model` / `from`), as resolved at submission. */
  modelVersion: z.strictObject({ name: z.string(), version: z.number().int() }).optional(),
});
export type JobMeta = z.infer<typeof JobMetaSchema>;

/** `code` of the log event the api appends to a job submitted while it has `waitingFor`. */
export const WAITING_FOR_WORKER = 'waiting_for_worker';

/** Written with `SET` under `keys.cancel(id)` by DELETE /v1/jobs/:id; the worker polls it. */
export const CancelRequestSchema = z.strictObject({ requestedAt: at });
export type CancelRequest = z.infer<typeof CancelRequestSchema>;

/** Metadata of an uploaded dataset, under `keys.dataset(id)`; the arrays are in the dataset store. */
export const DatasetMetaSchema = z.strictObject({
  id: z.string(),
  tenant: z.string(),
  samples: z.number().int(),
  seqLen: z.number().int(),
  inputSize: z.number().int(),
  /** `[N, T, O]` or `[N, O]`. */
  targetShape: z.array(z.number().int()),
  hasLengths: z.boolean(),
  format: z.enum(['json', 'csv']),
  bytes: z.number().int(),
  description: z.string().optional(),
  createdAt: at,
});
export type DatasetMeta = z.infer<typeof DatasetMetaSchema>;

/** Optional pointer to a job's last resumable checkpoint, under `keys.checkpoint(id)`. */
export const CheckpointPointerSchema = z.strictObject({
  /** Artifact name of the checkpoint. */
  name: z.string(),
  epoch: z.number().int().min(0),
  step: z.number().int().min(0),
  attempt: z.number().int().min(1),
  at,
});
export type CheckpointPointer = z.infer<typeof CheckpointPointerSchema>;
