/**
 * The api's configuration, read from the environment once at start-up and validated into one typed
 * object. Nothing else in the api reads `process.env`.
 */
import { resolve } from 'node:path';
import { z } from 'zod';
import {
  DEFAULT_JOB_POLICY,
  DEFAULT_LIMITS,
  DEFAULT_QUEUE_PREFIX,
  QUEUE_PREFIX_PATTERN,
  formatIssues,
  type JobPolicy,
  type PayloadLimits,
} from '@relu-lstm/jobs';

/** `10mb`, `512kb`, `1024` (bytes) -> bytes. */
const byteSize = z
  .union([z.number(), z.string()])
  .transform((v, ctx) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb)?\s*$/i.exec(String(v));
    if (!m) {
      ctx.addIssue({ code: 'custom', message: 'expected a size such as 1048576, 512kb or 10mb' });
      return z.NEVER;
    }
    const unit = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[(m[2] ?? 'b').toLowerCase() as 'b'];
    return Math.round(Number(m[1]) * unit);
  })
  .pipe(z.number().int().min(1));

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

const limitKeys = Object.keys(DEFAULT_LIMITS) as Array<keyof PayloadLimits>;
/** `maxHiddenSize` -> `LIMIT_MAX_HIDDEN_SIZE`. */
export const limitEnvName = (k: string): string => `LIMIT_${k.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

const EnvSchema = z.object({
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  QUEUE_PREFIX: z.string().regex(QUEUE_PREFIX_PATTERN).default(DEFAULT_QUEUE_PREFIX),
  ARTIFACT_DIR: z.string().min(1).default('./data/artifacts'),
  DATASET_DIR: z.string().min(1).default('./data/datasets'),
  /** Largest JSON body of the job routes. */
  BODY_LIMIT: byteSize.default(10 * 1024 * 1024),
  /** Largest dataset upload (JSON or CSV). */
  DATASET_BODY_LIMIT: byteSize.default(100 * 1024 * 1024),
  /** Longest wait of `POST /v1/jobs/infer?wait=true`. */
  INFER_WAIT_MS: int(0, 600_000).default(30_000),
  /** Keep-alive comment interval of the SSE route; also how often a silent job's state is checked. */
  SSE_KEEPALIVE_MS: int(100, 120_000).default(15_000),
  /** Most SSE streams and waiting requests open at once (each holds a Redis connection). */
  MAX_STREAMS: int(1, 100_000).default(500),
  JOB_ATTEMPTS_TRAIN: int(1, 100).default(DEFAULT_JOB_POLICY.attempts.train),
  JOB_ATTEMPTS_INFER: int(1, 100).default(DEFAULT_JOB_POLICY.attempts.infer),
  JOB_BACKOFF_MS: int(0, 3_600_000).default(DEFAULT_JOB_POLICY.backoffMs),
  JOB_KEEP_COMPLETED_SEC: int(0, 10 * 365 * 86400).default(DEFAULT_JOB_POLICY.keepCompletedSec),
  JOB_KEEP_COMPLETED_COUNT: int(0, 10_000_000).default(DEFAULT_JOB_POLICY.keepCompletedCount),
  JOB_KEEP_FAILED_SEC: int(0, 10 * 365 * 86400).default(DEFAULT_JOB_POLICY.keepFailedSec),
  JOB_KEEP_FAILED_COUNT: int(0, 10_000_000).default(DEFAULT_JOB_POLICY.keepFailedCount),
  LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
  ...Object.fromEntries(limitKeys.map((k) => [limitEnvName(k), int(1, Number.MAX_SAFE_INTEGER).default(DEFAULT_LIMITS[k])])),
});

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
  jobPolicy: JobPolicy;
  limits: PayloadLimits;
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
}

export class ConfigError extends Error {}

/** Validates the environment; empty variables count as unset. Throws `ConfigError` listing every bad one. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ApiConfig {
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const r = EnvSchema.safeParse(clean, { reportInput: true });
  if (!r.success) {
    const lines = formatIssues(r.error.issues).map((i) => `  ${i.path}: ${i.message}${i.received ? ` (got ${i.received})` : ''}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = r.data as z.output<typeof EnvSchema> & Record<string, number>;
  return {
    port: e.PORT,
    host: e.HOST,
    redisUrl: e.REDIS_URL,
    queuePrefix: e.QUEUE_PREFIX,
    artifactDir: resolve(e.ARTIFACT_DIR),
    datasetDir: resolve(e.DATASET_DIR),
    bodyLimit: e.BODY_LIMIT,
    datasetBodyLimit: e.DATASET_BODY_LIMIT,
    inferWaitMs: e.INFER_WAIT_MS,
    sseKeepAliveMs: e.SSE_KEEPALIVE_MS,
    maxStreams: e.MAX_STREAMS,
    jobPolicy: {
      attempts: { train: e.JOB_ATTEMPTS_TRAIN, infer: e.JOB_ATTEMPTS_INFER },
      backoffMs: e.JOB_BACKOFF_MS,
      keepCompletedSec: e.JOB_KEEP_COMPLETED_SEC,
      keepCompletedCount: e.JOB_KEEP_COMPLETED_COUNT,
      keepFailedSec: e.JOB_KEEP_FAILED_SEC,
      keepFailedCount: e.JOB_KEEP_FAILED_COUNT,
    },
    limits: Object.fromEntries(limitKeys.map((k) => [k, e[limitEnvName(k)]])) as unknown as PayloadLimits,
    logLevel: e.LOG_LEVEL,
  };
}
