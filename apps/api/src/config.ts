/**
 * The api's configuration, read from the environment once at start-up and validated into one typed
 * object. Nothing else in the api reads `process.env`.
 */
import { readFileSync } from 'node:fs';
import {
  COMMON_ENV,
  DEFAULT_JOB_POLICY,
  EnvError,
  LIMIT_ENV,
  envVar,
  integer,
  intVar,
  limitsFromEnv,
  matching,
  nonEmpty,
  optional,
  parseEnv,
  type EnvValues,
  type JobPolicy,
  type LogFormat,
  type LogLevel,
  type PayloadLimits,
} from '@relu-lstm/jobs';
import { checkDistinct, parseApiKeys, type ApiKeyEntry } from './http/api-keys';

const SIZE_UNITS = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;

/** `10mb`, `512kb`, `1024` (bytes) -> bytes, at least 1. */
function byteSize(raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?$/i.exec(raw);
  const bytes = m ? Math.round(Number(m[1]) * SIZE_UNITS[(m[2] ?? 'b').toLowerCase() as keyof typeof SIZE_UNITS]) : 0;
  if (bytes < 1) throw new Error('expected a size of at least 1 byte such as 1048576, 512kb or 10mb');
  return bytes;
}

const policy = DEFAULT_JOB_POLICY;
const TEN_YEARS_SEC = 10 * 365 * 86400;

/** Every variable the api reads besides `LIMIT_ENV` (docs/api.md describes each). */
export const API_ENV = {
  ...COMMON_ENV,
  PORT: intVar({ description: 'listen port; 0 picks a free one', min: 0, max: 65535, default: 3000 }),
  HOST: envVar({ description: 'listen address', default: '127.0.0.1', parse: nonEmpty }),
  BODY_LIMIT: envVar({ description: 'largest body of the job routes', default: '10mb', parse: byteSize }),
  DATASET_BODY_LIMIT: envVar({
    description: 'largest dataset upload (JSON or CSV)',
    default: '100mb',
    parse: byteSize,
  }),
  SESSION_IDLE_TTL_MS: intVar({
    description: 'a streaming inference session not stepped for this long expires',
    min: 1000,
    max: 7 * 86_400_000,
    default: 600_000,
  }),
  SESSION_STEP_WAIT_MS: intVar({
    description: 'longest wait of POST /v1/sessions/:id/step for its answer',
    min: 100,
    max: 600_000,
    default: 30_000,
  }),
  INFER_WAIT_MS: intVar({
    description: 'longest wait of POST /v1/jobs/infer?wait=true',
    min: 0,
    max: 600_000,
    default: 30_000,
  }),
  SSE_KEEPALIVE_MS: intVar({
    description: "keep-alive comment interval of the event stream; also how often a quiet job's state is checked",
    min: 100,
    max: 120_000,
    default: 15_000,
  }),
  MAX_STREAMS: intVar({
    description: 'event streams and waiting requests open at once (each holds a Redis connection)',
    min: 1,
    max: 100_000,
    default: 500,
  }),
  MAX_STREAMS_PER_TENANT: intVar({
    description: 'of those, the most one tenant may hold (per api process)',
    min: 1,
    max: 100_000,
    default: 100,
  }),
  JOB_ATTEMPTS_TRAIN: intVar({
    description: 'BullMQ attempts of a train job',
    min: 1,
    max: 100,
    default: policy.attempts.train,
  }),
  JOB_ATTEMPTS_INFER: intVar({
    description: 'BullMQ attempts of an infer job',
    min: 1,
    max: 100,
    default: policy.attempts.infer,
  }),
  JOB_BACKOFF_MS: intVar({ description: 'backoff base delay', min: 0, max: 3_600_000, default: policy.backoffMs }),
  JOB_KEEP_COMPLETED_SEC: intVar({
    description: 'age of completed jobs kept',
    min: 0,
    max: TEN_YEARS_SEC,
    default: policy.keepCompletedSec,
  }),
  JOB_KEEP_COMPLETED_COUNT: intVar({
    description: 'completed jobs kept per queue',
    min: 0,
    max: 10_000_000,
    default: policy.keepCompletedCount,
  }),
  JOB_KEEP_FAILED_SEC: intVar({
    description: 'age of failed and cancelled jobs kept',
    min: 0,
    max: TEN_YEARS_SEC,
    default: policy.keepFailedSec,
  }),
  JOB_KEEP_FAILED_COUNT: intVar({
    description: 'failed and cancelled jobs kept per queue',
    min: 0,
    max: 10_000_000,
    default: policy.keepFailedCount,
  }),
  API_KEYS: optional({
    description: '`<tenant>:<sha256 hex of the key>`, comma-separated (see http/api-keys.ts)',
    parse: String,
    secret: true,
  }),
  API_KEYS_FILE: optional({
    description: 'a file of such entries, one a line, or a JSON array of `{ tenant, sha256 }`',
    parse: String,
  }),
  ADMIN_KEY_HASH: optional({
    description: 'SHA-256 hex of the admin key (GET /v1/admin/overview); unset: no admin view',
    parse: matching(/^[0-9a-fA-F]{64}$/, 'the 64-hex-digit SHA-256 of the admin key'),
    secret: true,
  }),
  RATE_LIMIT_RPS: intVar({
    description: 'requests per second per tenant (token bucket in Redis); 0: off',
    min: 0,
    max: 1_000_000,
    default: 1000,
  }),
  RATE_LIMIT_BURST: optional({
    description: 'bucket size per tenant; unset: twice RATE_LIMIT_RPS',
    parse: integer(1, 10_000_000),
  }),
  RATE_LIMIT_ANON_RPS: intVar({
    description: 'the same per client address, for requests without a valid key; 0: off',
    min: 0,
    max: 1_000_000,
    default: 5,
  }),
  RATE_LIMIT_ANON_BURST: intVar({
    description: 'bucket size per client address',
    min: 1,
    max: 10_000_000,
    default: 20,
  }),
  MAX_QUEUED_JOBS_PER_TENANT: intVar({
    description: 'queued + running jobs a tenant may have (submitted through the api); 0: no quota',
    min: 0,
    max: 1_000_000,
    default: 200,
  }),
  MAX_DATASET_UPLOADS: intVar({
    description: 'dataset uploads read at once by one api process; past it, 503 with Retry-After',
    min: 1,
    max: 1000,
    default: 2,
  }),
  MAX_DATASETS_PER_TENANT: intVar({
    description: 'datasets a tenant may keep; past it, uploads get 429 until one is deleted; 0: no bound',
    min: 0,
    max: 10_000_000,
    default: 1000,
  }),
  MAX_MODEL_VERSIONS_PER_TENANT: intVar({
    description:
      'registered model versions a tenant may keep, all its models together; past it, POST /v1/models gets 429 until one is deleted; 0: no bound',
    min: 0,
    max: 10_000_000,
    default: 1000,
  }),
  MAX_DATASET_BYTES_PER_TENANT: envVar({
    description: "stored bytes of a tenant's datasets together; an upload that would pass it gets 413",
    default: '10gb',
    parse: byteSize,
  }),
  HEALTH_PROBE_MS: intVar({
    description: 'how often the background probe PINGs Redis for /health and /ready',
    min: 50,
    max: 60_000,
    default: 1000,
  }),
  REDIS_STALE_MS: intVar({
    description: 'no PING answered for this long: Redis counts as down (a slower answer is latency)',
    min: 100,
    max: 600_000,
    default: 30_000,
  }),
  SSE_MAX_BUFFER_BYTES: envVar({
    description: 'unsent bytes an event stream may hold before the api stops reading events for it',
    default: '256kb',
    parse: byteSize,
  }),
  SSE_STALL_MS: intVar({
    description:
      'an event-stream client whose buffer stays full this long is disconnected (it resumes with Last-Event-ID)',
    min: 100,
    max: 3_600_000,
    default: 30_000,
  }),
};

export interface ApiConfig {
  port: number;
  host: string;
  redisUrl: string;
  queuePrefix: string;
  artifactDir: string;
  datasetDir: string;
  bodyLimit: number;
  datasetBodyLimit: number;
  inferWaitMs: number;
  sseKeepAliveMs: number;
  maxStreams: number;
  maxStreamsPerTenant: number;
  jobPolicy: JobPolicy;
  limits: PayloadLimits;
  logLevel: LogLevel;
  logFormat: LogFormat;
  /** Key digests by tenant; empty: no keys, loopback only, one tenant `default`. */
  apiKeys: ApiKeyEntry[];
  adminKeyHash: Buffer | null;
  rateLimit: { tenant: RateLimit; anonymous: RateLimit };
  /** 0: no quota. */
  maxLiveJobsPerTenant: number;
  maxDatasetUploads: number;
  /** 0: no bound. */
  maxDatasetsPerTenant: number;
  maxModelVersionsPerTenant: number;
  maxDatasetBytesPerTenant: number;
  healthProbeMs: number;
  redisStaleMs: number;
  sseMaxBufferBytes: number;
  sseStallMs: number;
  sessionIdleTtlMs: number;
  sessionStepWaitMs: number;
}

/** Token bucket: `rps` tokens a second, at most `burst`; rps 0 turns it off. */
export interface RateLimit {
  rps: number;
  burst: number;
}

/** Addresses the api may listen on without API keys. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

export class ConfigError extends Error {}

/** Validates the environment; blank variables count as unset. Throws `ConfigError` listing every bad one. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): ApiConfig {
  const main = parseEnv(API_ENV, env);
  const limits = parseEnv(LIMIT_ENV, env);
  const problems = [...main.problems, ...limits.problems];
  if (problems.length) throw new ConfigError(new EnvError(problems).message);
  const e = main.values;
  const apiKeys = loadKeys(e.API_KEYS, e.API_KEYS_FILE, readFile);
  if (apiKeys.length === 0 && !isLoopback(e.HOST)) {
    throw new ConfigError(
      `refusing to listen on HOST=${e.HOST} without API keys: with no keys the api serves one tenant to anyone who can connect, ` +
        'so it binds only to loopback (127.0.0.1, ::1, localhost). Configure API_KEYS or API_KEYS_FILE (see README, Security), or use HOST=127.0.0.1.',
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    artifactDir: e.ARTIFACT_DIR,
    datasetDir: e.DATASET_DIR,
    bodyLimit: e.BODY_LIMIT,
    datasetBodyLimit: e.DATASET_BODY_LIMIT,
    inferWaitMs: e.INFER_WAIT_MS,
    sseKeepAliveMs: e.SSE_KEEPALIVE_MS,
    maxStreams: e.MAX_STREAMS,
    maxStreamsPerTenant: e.MAX_STREAMS_PER_TENANT,
    jobPolicy: jobPolicyFrom(e),
    limits: limitsFromEnv(limits.values),
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT,
    apiKeys,
    adminKeyHash: e.ADMIN_KEY_HASH ? Buffer.from(e.ADMIN_KEY_HASH, 'hex') : null,
    rateLimit: {
      tenant: { rps: e.RATE_LIMIT_RPS, burst: e.RATE_LIMIT_BURST ?? Math.max(1, 2 * e.RATE_LIMIT_RPS) },
      anonymous: { rps: e.RATE_LIMIT_ANON_RPS, burst: e.RATE_LIMIT_ANON_BURST },
    },
    maxLiveJobsPerTenant: e.MAX_QUEUED_JOBS_PER_TENANT,
    maxDatasetUploads: e.MAX_DATASET_UPLOADS,
    maxDatasetsPerTenant: e.MAX_DATASETS_PER_TENANT,
    maxModelVersionsPerTenant: e.MAX_MODEL_VERSIONS_PER_TENANT,
    maxDatasetBytesPerTenant: e.MAX_DATASET_BYTES_PER_TENANT,
    healthProbeMs: e.HEALTH_PROBE_MS,
    redisStaleMs: e.REDIS_STALE_MS,
    sseMaxBufferBytes: e.SSE_MAX_BUFFER_BYTES,
    sseStallMs: e.SSE_STALL_MS,
    sessionIdleTtlMs: e.SESSION_IDLE_TTL_MS,
    sessionStepWaitMs: e.SESSION_STEP_WAIT_MS,
  };
}

function jobPolicyFrom(e: EnvValues<typeof API_ENV>): JobPolicy {
  return {
    attempts: { train: e.JOB_ATTEMPTS_TRAIN, infer: e.JOB_ATTEMPTS_INFER },
    backoffMs: e.JOB_BACKOFF_MS,
    keepCompletedSec: e.JOB_KEEP_COMPLETED_SEC,
    keepCompletedCount: e.JOB_KEEP_COMPLETED_COUNT,
    keepFailedSec: e.JOB_KEEP_FAILED_SEC,
    keepFailedCount: e.JOB_KEEP_FAILED_COUNT,
  };
}

function loadKeys(
  inline: string | undefined,
  file: string | undefined,
  readFile: (path: string) => string,
): ApiKeyEntry[] {
  try {
    const entries = inline ? parseApiKeys(inline, 'API_KEYS') : [];
    if (file) {
      let text: string;
      try {
        text = readFile(file);
      } catch (err) {
        throw new Error(
          `API_KEYS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
        );
      }
      const fromFile = parseApiKeys(text, 'API_KEYS_FILE');
      if (fromFile.length === 0) throw new Error(`API_KEYS_FILE: ${file} holds no keys`);
      entries.push(...fromFile);
    }
    checkDistinct(entries);
    return entries;
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  ${(err as Error).message}`);
  }
}
