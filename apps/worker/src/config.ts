/**
 * The worker's configuration: read from the environment once, at start-up, and checked into one
 * typed, frozen object; the variables it shares with the api are `COMMON_ENV` of @relu-lstm/jobs.
 * Nothing else in the worker reads `process.env` (the engine child gets what it needs from this
 * object through its `init` message).
 *
 * See docs/worker.md for every variable; the lock and stall settings are explained there in full.
 */
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import {
  BACKEND_ENV,
  COMMON_ENV,
  LIMIT_ENV,
  limitEnvName,
  DEFAULT_STREAM_MAXLEN,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TTL_MS,
  QUEUE_NAMES,
  SAFE_ID,
  between,
  envVar,
  intVar,
  integer,
  matching,
  nonEmpty,
  optional,
  parseEnv,
  type LogFormat,
  type LogLevel,
  type QueueName,
} from '@relu-lstm/jobs';

const HOUR_MS = 3600 * 1000;

/** `gpu, any` -> the queues, each known and named once. */
function queueList(raw: string): QueueName[] {
  const queues = raw
    .split(',')
    .map((q) => q.trim())
    .filter((q) => q !== '');
  const known = queues.every((q) => (QUEUE_NAMES as readonly string[]).includes(q));
  if (queues.length === 0 || !known || new Set(queues).size !== queues.length) {
    throw new Error(`expected a comma list of ${QUEUE_NAMES.join(', ')}, at least one queue and no queue twice`);
  }
  return queues as QueueName[];
}

/** Every variable the worker reads (docs/worker.md describes each; the lock and stall settings in full). */
export const WORKER_ENV = {
  ...COMMON_ENV,
  ...BACKEND_ENV,
  WORKER_QUEUES: optional({
    description:
      'comma list of gpu, cpu, any; unset: from the backend the engine starts (GPU: gpu,any, else cpu,any); gpu is consumed only on a hardware GPU backend',
    parse: queueList,
  }),
  WORKER_ID: optional({
    description: 'id in heartbeats and running events',
    parse: matching(SAFE_ID, `an id of letters, digits, '.', '-' and '_' (${SAFE_ID.source})`),
  }),
  HEARTBEAT_INTERVAL_MS: intVar({
    description: 'heartbeat period',
    min: 100,
    max: 600_000,
    default: HEARTBEAT_INTERVAL_MS,
  }),
  HEARTBEAT_TTL_MS: intVar({
    description: 'heartbeat key TTL; must exceed the period',
    min: 200,
    max: 3_600_000,
    default: HEARTBEAT_TTL_MS,
  }),
  LOCK_DURATION_MS: intVar({
    description: "BullMQ lockDuration: how long a job's lock lives without renewal (renewed every half of it)",
    min: 500,
    max: 3_600_000,
    default: 30_000,
  }),
  STALLED_INTERVAL_MS: intVar({
    description: 'BullMQ stalledInterval: how often this worker looks for jobs whose lock lapsed',
    min: 500,
    max: 3_600_000,
    default: 30_000,
  }),
  MAX_STALLED_COUNT: intVar({
    description: 'BullMQ maxStalledCount: recoveries from a lapsed lock before the job fails',
    min: 0,
    max: 1000,
    default: 3,
  }),
  PROGRESS_EVERY: intVar({
    description: "floor on the payload's training.progressEvery (steps between metric points)",
    min: 1,
    max: 1_000_000,
    default: 1,
  }),
  CANCEL_POLL_MS: intVar({
    description: "how often a running job's cancel flag is read",
    min: 50,
    max: 60_000,
    default: 1000,
  }),
  SHUTDOWN_GRACE_MS: intVar({
    description: 'on SIGTERM: how long the running training gets to stop at a batch boundary and checkpoint',
    min: 0,
    max: 600_000,
    default: 10_000,
  }),
  JOB_TIMEOUT_TRAIN_MS: intVar({
    description: 'wall-clock limit of one attempt of a train job (then it stops at a batch boundary: timeout)',
    min: 1000,
    max: 30 * 24 * HOUR_MS,
    default: 24 * HOUR_MS,
  }),
  JOB_TIMEOUT_INFER_MS: intVar({
    description: 'wall-clock limit of one attempt of an infer job (then the engine is killed: timeout)',
    min: 100,
    max: 24 * HOUR_MS,
    default: 300_000,
  }),
  ENGINE_START_TIMEOUT_MS: intVar({
    description: "longest wait for the engine's backend (a GPU's first start JIT-compiles kernels)",
    min: 1000,
    max: HOUR_MS,
    default: 300_000,
  }),
  MODEL_CACHE_SIZE: intVar({
    description: 'models kept loaded (LRU) in the engine for infer jobs, and as many in the worker for session steps',
    min: 0,
    max: 1000,
    default: 4,
  }),
  MODEL_CACHE_MB: intVar({
    description:
      'the most memory (MiB of weights) the models kept loaded in one engine (and for session steps) may take; 0: no bound but the count',
    min: 0,
    max: 1_000_000,
    default: 512,
  }),
  EVENT_STREAM_MAXLEN: intVar({
    description: "cap of each job's event stream (XADD MAXLEN ~)",
    min: 100,
    max: 100_000_000,
    default: DEFAULT_STREAM_MAXLEN,
  }),
  DIVERGENCE_RETRIES: intVar({
    description: 'rollbacks (each with a smaller learning rate) before a training fails with diverged',
    min: 0,
    max: 100,
    default: 3,
  }),
  DIVERGENCE_LR_FACTOR: envVar({
    description: 'the learning rate is multiplied by this at each rollback',
    default: '0.5',
    parse: between(0, 1),
  }),
  /** One definition with the api's payload limit: the budget the api estimates jobs against bounds the engine too. */
  LIMIT_MAX_JOB_MEMORY_MB: LIMIT_ENV[limitEnvName('maxJobMemoryMb')],
  ENGINE_MEMORY_POLL_MS: intVar({
    description: "how often the engine's resident set is read against LIMIT_MAX_JOB_MEMORY_MB",
    min: 10,
    max: 60_000,
    default: 200,
  }),
  CANCEL_KILL_MS: intVar({
    description: 'how long a cancelled run gets to stop at a batch boundary before the engine is killed',
    min: 0,
    max: 600_000,
    default: 2000,
  }),
  DIVERGED_LOSS_FACTOR: envVar({
    description:
      "a completed training whose final loss is not finite or above this times its first epoch's is flagged diverged",
    default: '10',
    parse: between(1, Number.MAX_VALUE),
  }),
  RETENTION_SWEEP_MS: intVar({
    description: 'period of the retention sweeper (one worker at a time sweeps); 0: this worker never sweeps',
    min: 0,
    max: 86_400_000,
    default: 60_000,
  }),
  METRICS_PORT: optional({
    description: 'serve Prometheus metrics (GET /metrics) on this port; 0: a free one (logged); unset: none',
    parse: integer(0, 65535),
  }),
  METRICS_HOST: envVar({
    description: 'address the metrics port listens on (0.0.0.0 for a Prometheus on another host)',
    default: '127.0.0.1',
    parse: nonEmpty,
  }),
  DATASET_KEEP_UNUSED_SEC: intVar({
    description:
      'the retention sweeper removes datasets no job has named for this long (upload or last submission); 0: kept forever',
    min: 0,
    max: 10 * 365 * 86400,
    default: 0,
  }),
};

export interface WorkerConfig {
  readonly redisUrl: string;
  readonly queuePrefix: string;
  readonly artifactDir: string;
  readonly datasetDir: string;
  /** Null: decided from the backend once the engine has started (`queuesForWorker`). */
  readonly queues: readonly QueueName[] | null;
  /** As set (lower case): tensorflow, webgpu, wasm, cpu or auto; the engine checks it. */
  readonly backend: string;
  readonly workerId: string;
  readonly heartbeat: { readonly intervalMs: number; readonly ttlMs: number };
  readonly lock: { readonly durationMs: number; readonly stalledIntervalMs: number; readonly maxStalledCount: number };
  readonly progressEvery: number;
  readonly cancelPollMs: number;
  readonly shutdownGraceMs: number;
  /** Per-attempt wall-clock limits by job type. */
  readonly timeouts: { readonly trainMs: number; readonly inferMs: number };
  readonly engineStartTimeoutMs: number;
  readonly modelCacheSize: number;
  readonly modelCacheMb: number;
  readonly eventStreamMaxLen: number;
  readonly divergence: { readonly retries: number; readonly lrFactor: number };
  /** The engine's budget per job (LIMIT_MAX_JOB_MEMORY_MB) and its watchdog's period. */
  readonly memory: { readonly maxJobMb: number; readonly pollMs: number };
  readonly cancelKillMs: number;
  readonly divergedLossFactor: number;
  readonly retentionSweepMs: number;
  /** 0: datasets are kept. */
  readonly datasetKeepUnusedSec: number;
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  /** Where GET /metrics listens; null: not served. */
  readonly metrics: { readonly port: number; readonly host: string } | null;
}

export class WorkerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid worker configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'WorkerConfigError';
  }
}

/** Validates the environment; throws `WorkerConfigError` listing every bad variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const { values: e, problems } = parseEnv(WORKER_ENV, env);
  if (problems.length) throw new WorkerConfigError(problems);
  if (e.HEARTBEAT_TTL_MS <= e.HEARTBEAT_INTERVAL_MS) {
    throw new WorkerConfigError([
      `HEARTBEAT_TTL_MS (${e.HEARTBEAT_TTL_MS}) must exceed HEARTBEAT_INTERVAL_MS (${e.HEARTBEAT_INTERVAL_MS})`,
    ]);
  }
  const host =
    os
      .hostname()
      .replace(/[^A-Za-z0-9._-]/g, '-')
      .slice(0, 80) || 'host';
  return Object.freeze({
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    artifactDir: e.ARTIFACT_DIR,
    datasetDir: e.DATASET_DIR,
    queues: e.WORKER_QUEUES ? Object.freeze([...e.WORKER_QUEUES]) : null,
    backend: e.RELU_LSTM_BACKEND,
    workerId: e.WORKER_ID ?? `${host}-${process.pid}-${randomBytes(3).toString('hex')}`,
    heartbeat: Object.freeze({ intervalMs: e.HEARTBEAT_INTERVAL_MS, ttlMs: e.HEARTBEAT_TTL_MS }),
    lock: Object.freeze({
      durationMs: e.LOCK_DURATION_MS,
      stalledIntervalMs: e.STALLED_INTERVAL_MS,
      maxStalledCount: e.MAX_STALLED_COUNT,
    }),
    progressEvery: e.PROGRESS_EVERY,
    cancelPollMs: e.CANCEL_POLL_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    timeouts: Object.freeze({ trainMs: e.JOB_TIMEOUT_TRAIN_MS, inferMs: e.JOB_TIMEOUT_INFER_MS }),
    engineStartTimeoutMs: e.ENGINE_START_TIMEOUT_MS,
    modelCacheSize: e.MODEL_CACHE_SIZE,
    modelCacheMb: e.MODEL_CACHE_MB,
    eventStreamMaxLen: e.EVENT_STREAM_MAXLEN,
    divergence: Object.freeze({ retries: e.DIVERGENCE_RETRIES, lrFactor: e.DIVERGENCE_LR_FACTOR }),
    memory: Object.freeze({ maxJobMb: e.LIMIT_MAX_JOB_MEMORY_MB, pollMs: e.ENGINE_MEMORY_POLL_MS }),
    cancelKillMs: e.CANCEL_KILL_MS,
    divergedLossFactor: e.DIVERGED_LOSS_FACTOR,
    retentionSweepMs: e.RETENTION_SWEEP_MS,
    datasetKeepUnusedSec: e.DATASET_KEEP_UNUSED_SEC,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    metrics: e.METRICS_PORT === undefined ? null : Object.freeze({ port: e.METRICS_PORT, host: e.METRICS_HOST }),
  });
}

/** Injection token of the `WorkerConfig`. */
export const WORKER_CONFIG = Symbol('WORKER_CONFIG');
