/**
 * The worker's configuration: read from the environment once, at start-up, validated with zod into
 * one typed, frozen object. Nothing else in the worker reads `process.env` (the engine child gets
 * what it needs from this object through its `init` message).
 *
 * See docs/worker.md for every variable; the lock and stall settings are explained there in full.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  DEFAULT_LIMITS,
  DEFAULT_QUEUE_PREFIX,
  DEFAULT_STREAM_MAXLEN,
  HEARTBEAT_INTERVAL_MS,
  HEARTBEAT_TTL_MS,
  QUEUE_NAMES,
  QUEUE_PREFIX_PATTERN,
  SAFE_ID,
  formatPath,
  type QueueName,
} from '@relu-lstm/jobs';

const ms = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Empty strings count as unset, so `FOO= node main.js` gets the default. */
const blankToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : typeof v === 'string' ? v.trim() : v);
const opt = <T extends z.ZodType>(schema: T) => z.preprocess(blankToUndefined, schema);

const queueList = z
  .string()
  .transform((s) => s.split(',').map((q) => q.trim()).filter((q) => q !== ''))
  .pipe(z.array(z.enum(QUEUE_NAMES)).min(1, 'at least one queue').refine((qs) => new Set(qs).size === qs.length, 'no queue twice'));

const EnvSchema = z.object({
  REDIS_URL: opt(z.string().regex(/^rediss?:\/\//, 'a redis:// or rediss:// URL').default('redis://127.0.0.1:6379')),
  QUEUE_PREFIX: opt(z.string().regex(QUEUE_PREFIX_PATTERN).default(DEFAULT_QUEUE_PREFIX)),
  ARTIFACT_DIR: opt(z.string().default(path.join(process.cwd(), 'data', 'artifacts'))),
  DATASET_DIR: opt(z.string().default(path.join(process.cwd(), 'data', 'datasets'))),
  /** Comma list of gpu, cpu, any; default from the backend the engine starts: GPU -> gpu,any, else cpu,any. */
  WORKER_QUEUES: opt(queueList.optional()),
  /** tensorflow | wasm | cpu | auto; validated by the library in the engine at start-up. */
  RELU_LSTM_BACKEND: opt(z.string().optional()),
  WORKER_ID: opt(z.string().regex(SAFE_ID).optional()),
  HEARTBEAT_INTERVAL_MS: opt(ms(100, 600_000).default(HEARTBEAT_INTERVAL_MS)),
  HEARTBEAT_TTL_MS: opt(ms(200, 3_600_000).default(HEARTBEAT_TTL_MS)),
  /** BullMQ `lockDuration`: how long a job's lock lives without renewal (renewed every half of it). */
  LOCK_DURATION_MS: opt(ms(500, 3_600_000).default(30_000)),
  /** BullMQ `stalledInterval`: how often this worker looks for jobs whose lock lapsed. */
  STALLED_INTERVAL_MS: opt(ms(500, 3_600_000).default(30_000)),
  /** BullMQ `maxStalledCount`: how many times a job may be recovered from a lapsed lock before it fails. */
  MAX_STALLED_COUNT: opt(z.coerce.number().int().min(0).max(1000).default(3)),
  /** Floor on the payload's `training.progressEvery` (steps between metric points). */
  PROGRESS_EVERY: opt(z.coerce.number().int().min(1).max(1_000_000).default(1)),
  /** How often a running job's cancel flag is read. */
  CANCEL_POLL_MS: opt(ms(50, 60_000).default(1000)),
  /** On SIGTERM: how long the running training gets to stop at a batch boundary and write a checkpoint. */
  SHUTDOWN_GRACE_MS: opt(ms(0, 600_000).default(10_000)),
  /** Wall-clock limit of one attempt of a train job; past it the job stops at a batch boundary and fails with `timeout`. */
  JOB_TIMEOUT_TRAIN_MS: opt(ms(1000, 30 * 24 * 3600 * 1000).default(24 * 3600 * 1000)),
  /** Wall-clock limit of one attempt of an infer job; past it the engine is killed and the job fails with `timeout`. */
  JOB_TIMEOUT_INFER_MS: opt(ms(100, 24 * 3600 * 1000).default(300_000)),
  /** Longest wait for the engine child to initialise its backend (a GPU's first start JIT-compiles kernels). */
  ENGINE_START_TIMEOUT_MS: opt(ms(1000, 3_600_000).default(300_000)),
  /** Models kept loaded in the engine for infer jobs (LRU). */
  MODEL_CACHE_SIZE: opt(z.coerce.number().int().min(0).max(1000).default(4)),
  /** Cap of each job's event stream (`XADD MAXLEN ~`). */
  EVENT_STREAM_MAXLEN: opt(z.coerce.number().int().min(100).max(100_000_000).default(DEFAULT_STREAM_MAXLEN)),
  /** Divergence guard: rollbacks (each with a smaller learning rate) before a training fails with `diverged`. */
  DIVERGENCE_RETRIES: opt(z.coerce.number().int().min(0).max(100).default(3)),
  /** Divergence guard: the learning rate is multiplied by this at each rollback. */
  DIVERGENCE_LR_FACTOR: opt(z.coerce.number().gt(0).lt(1).default(0.5)),
  /** Engine memory budget of one job (MB): jobs estimated above it fail with `resource_exhausted`; bounds the engine's V8 heap and resident set. */
  LIMIT_MAX_JOB_MEMORY_MB: opt(z.coerce.number().int().min(64).max(1_048_576).default(DEFAULT_LIMITS.maxJobMemoryMb)),
  /** How often the engine's resident set is read against LIMIT_MAX_JOB_MEMORY_MB. */
  ENGINE_MEMORY_POLL_MS: opt(ms(10, 60_000).default(200)),
  /** How long a cancelled run gets to stop at a batch boundary before the engine is killed. */
  CANCEL_KILL_MS: opt(ms(0, 600_000).default(2000)),
  /** A completed training whose final loss is not finite or above this times its first epoch's is flagged `diverged`. */
  DIVERGED_LOSS_FACTOR: opt(z.coerce.number().gt(1).default(10)),
  /** Period of the retention sweeper (one worker at a time sweeps); 0: this worker never sweeps. */
  RETENTION_SWEEP_MS: opt(ms(0, 86_400_000).default(60_000)),
  LOG_LEVEL: opt(z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log')),
});

export interface WorkerConfig {
  readonly redisUrl: string;
  readonly queuePrefix: string;
  readonly artifactDir: string;
  readonly datasetDir: string;
  /** Null: decided from the backend once the engine has started (`queuesForWorker`). */
  readonly queues: readonly QueueName[] | null;
  readonly backend: string | undefined;
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
  readonly eventStreamMaxLen: number;
  readonly divergence: { readonly retries: number; readonly lrFactor: number };
  /** The engine's budget per job (LIMIT_MAX_JOB_MEMORY_MB) and its watchdog's period. */
  readonly memory: { readonly maxJobMb: number; readonly pollMs: number };
  readonly cancelKillMs: number;
  readonly divergedLossFactor: number;
  readonly retentionSweepMs: number;
  readonly logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
}

export class WorkerConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid worker configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'WorkerConfigError';
  }
}

/** Validates the environment; throws `WorkerConfigError` listing every bad variable. */
export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const r = EnvSchema.safeParse(env);
  if (!r.success) {
    // zod does not repeat the input in its issues: name the variable's raw value ourselves.
    const got = (i: z.core.$ZodIssue) => ('input' in i && i.input !== undefined ? i.input : i.path.length ? env[String(i.path[0])] : undefined);
    throw new WorkerConfigError(r.error.issues.map((i) => `${formatPath(i.path) || 'env'}: ${i.message}${got(i) !== undefined ? ` (got ${JSON.stringify(got(i))})` : ''}`));
  }
  const e = r.data;
  const problems: string[] = [];
  if (e.HEARTBEAT_TTL_MS <= e.HEARTBEAT_INTERVAL_MS) problems.push(`HEARTBEAT_TTL_MS (${e.HEARTBEAT_TTL_MS}) must exceed HEARTBEAT_INTERVAL_MS (${e.HEARTBEAT_INTERVAL_MS})`);
  if (problems.length) throw new WorkerConfigError(problems);
  const host = os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 80) || 'host';
  return Object.freeze({
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    artifactDir: path.resolve(e.ARTIFACT_DIR),
    datasetDir: path.resolve(e.DATASET_DIR),
    queues: e.WORKER_QUEUES ? Object.freeze([...e.WORKER_QUEUES]) : null,
    backend: e.RELU_LSTM_BACKEND,
    workerId: e.WORKER_ID ?? `${host}-${process.pid}-${randomBytes(3).toString('hex')}`,
    heartbeat: Object.freeze({ intervalMs: e.HEARTBEAT_INTERVAL_MS, ttlMs: e.HEARTBEAT_TTL_MS }),
    lock: Object.freeze({ durationMs: e.LOCK_DURATION_MS, stalledIntervalMs: e.STALLED_INTERVAL_MS, maxStalledCount: e.MAX_STALLED_COUNT }),
    progressEvery: e.PROGRESS_EVERY,
    cancelPollMs: e.CANCEL_POLL_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    timeouts: Object.freeze({ trainMs: e.JOB_TIMEOUT_TRAIN_MS, inferMs: e.JOB_TIMEOUT_INFER_MS }),
    engineStartTimeoutMs: e.ENGINE_START_TIMEOUT_MS,
    modelCacheSize: e.MODEL_CACHE_SIZE,
    eventStreamMaxLen: e.EVENT_STREAM_MAXLEN,
    divergence: Object.freeze({ retries: e.DIVERGENCE_RETRIES, lrFactor: e.DIVERGENCE_LR_FACTOR }),
    memory: Object.freeze({ maxJobMb: e.LIMIT_MAX_JOB_MEMORY_MB, pollMs: e.ENGINE_MEMORY_POLL_MS }),
    cancelKillMs: e.CANCEL_KILL_MS,
    divergedLossFactor: e.DIVERGED_LOSS_FACTOR,
    retentionSweepMs: e.RETENTION_SWEEP_MS,
    logLevel: e.LOG_LEVEL,
  });
}

/** Injection token of the `WorkerConfig`. */
export const WORKER_CONFIG = Symbol('WORKER_CONFIG');
