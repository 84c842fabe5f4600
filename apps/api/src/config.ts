/**
 * The api's configuration, read from the environment once at start-up and validated into one typed
 * object. Nothing else in the api reads `process.env`.
 */
import { readFileSync } from 'node:fs';
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
import { checkDistinct, parseApiKeys, type ApiKeyEntry } from './http/api-keys';

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
  /** Of those, the most one tenant may hold (per api process). */
  MAX_STREAMS_PER_TENANT: int(1, 100_000).default(100),
  JOB_ATTEMPTS_TRAIN: int(1, 100).default(DEFAULT_JOB_POLICY.attempts.train),
  JOB_ATTEMPTS_INFER: int(1, 100).default(DEFAULT_JOB_POLICY.attempts.infer),
  JOB_BACKOFF_MS: int(0, 3_600_000).default(DEFAULT_JOB_POLICY.backoffMs),
  JOB_KEEP_COMPLETED_SEC: int(0, 10 * 365 * 86400).default(DEFAULT_JOB_POLICY.keepCompletedSec),
  JOB_KEEP_COMPLETED_COUNT: int(0, 10_000_000).default(DEFAULT_JOB_POLICY.keepCompletedCount),
  JOB_KEEP_FAILED_SEC: int(0, 10 * 365 * 86400).default(DEFAULT_JOB_POLICY.keepFailedSec),
  JOB_KEEP_FAILED_COUNT: int(0, 10_000_000).default(DEFAULT_JOB_POLICY.keepFailedCount),
  LOG_LEVEL: z.enum(['error', 'warn', 'log', 'debug', 'verbose']).default('log'),
  /** `<tenant>:<sha256 hex of the key>`, comma-separated (see http/api-keys.ts). */
  API_KEYS: z.string().optional(),
  /** A file of such entries, one a line, or a JSON array of `{ tenant, sha256 }`. */
  API_KEYS_FILE: z.string().optional(),
  /** SHA-256 hex of the admin key (GET /v1/admin/overview); unset: no admin view. */
  ADMIN_KEY_HASH: z.string().regex(/^[0-9a-fA-F]{64}$/, 'expected the 64-hex-digit SHA-256 of the admin key').optional(),
  /** Requests per second per tenant (token bucket, shared by every api process through Redis); 0: off. */
  RATE_LIMIT_RPS: int(0, 1_000_000).default(1000),
  /** Bucket size per tenant: the burst allowed above the rate. Default: twice RATE_LIMIT_RPS. */
  RATE_LIMIT_BURST: int(1, 10_000_000).optional(),
  /** The same per client address for requests without a valid key (slows key guessing); 0: off. */
  RATE_LIMIT_ANON_RPS: int(0, 1_000_000).default(5),
  RATE_LIMIT_ANON_BURST: int(1, 10_000_000).default(20),
  /** Queued + running jobs a tenant may have at once (submitted through the api); 0: no quota. */
  MAX_QUEUED_JOBS_PER_TENANT: int(0, 1_000_000).default(200),
  ...Object.fromEntries(limitKeys.map((k) => [limitEnvName(k), int(1, Number.MAX_SAFE_INTEGER).default(DEFAULT_LIMITS[k])])),
  // Hostile-but-valid requests (issue 10): uploads, streams and health.
  /** Dataset uploads read at once by one api process; past it, 503 with Retry-After. */
  MAX_DATASET_UPLOADS: int(1, 1000).default(2),
  /** How often the background probe PINGs Redis for /health and /ready. */
  HEALTH_PROBE_MS: int(50, 60_000).default(1000),
  /** No PING answered for this long: Redis counts as down (a slower answer is latency). */
  REDIS_STALE_MS: int(100, 600_000).default(30_000),
  /** Unsent bytes an SSE connection may hold before the api stops reading events for it. */
  SSE_MAX_BUFFER_BYTES: byteSize.default(256 * 1024),
  /** An SSE client whose buffer stays full this long is disconnected (it resumes with Last-Event-ID). */
  SSE_STALL_MS: int(100, 3_600_000).default(30_000),
});

/** Variables whose values are never printed (a password in the URL, key hashes). */
const SECRET_VARS = new Set(['REDIS_URL', 'API_KEYS', 'ADMIN_KEY_HASH']);

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
  logLevel: 'error' | 'warn' | 'log' | 'debug' | 'verbose';
  /** Key digests by tenant; empty: no keys, loopback only, one tenant `default`. */
  apiKeys: ApiKeyEntry[];
  adminKeyHash: Buffer | null;
  rateLimit: { tenant: RateLimit; anonymous: RateLimit };
  /** 0: no quota. */
  maxLiveJobsPerTenant: number;
  maxDatasetUploads: number;
  healthProbeMs: number;
  redisStaleMs: number;
  sseMaxBufferBytes: number;
  sseStallMs: number;
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

/** Validates the environment; empty variables count as unset. Throws `ConfigError` listing every bad one. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, readFile: (path: string) => string = (p) => readFileSync(p, 'utf8')): ApiConfig {
  const clean = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const r = EnvSchema.safeParse(clean, { reportInput: true });
  if (!r.success) {
    // Values that may hold a secret are described by their length only.
    const shown = (i: { path: string; received?: string }) =>
      SECRET_VARS.has(i.path) ? ` (got ${String(clean[i.path] ?? '').length} characters)` : i.received ? ` (got ${i.received})` : '';
    const lines = formatIssues(r.error.issues).map((i) => `  ${i.path}: ${i.message}${shown(i)}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = r.data as z.output<typeof EnvSchema> & Record<string, number>;
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
    artifactDir: resolve(e.ARTIFACT_DIR),
    datasetDir: resolve(e.DATASET_DIR),
    bodyLimit: e.BODY_LIMIT,
    datasetBodyLimit: e.DATASET_BODY_LIMIT,
    inferWaitMs: e.INFER_WAIT_MS,
    sseKeepAliveMs: e.SSE_KEEPALIVE_MS,
    maxStreams: e.MAX_STREAMS,
    maxStreamsPerTenant: e.MAX_STREAMS_PER_TENANT,
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
    apiKeys,
    adminKeyHash: e.ADMIN_KEY_HASH ? Buffer.from(e.ADMIN_KEY_HASH, 'hex') : null,
    rateLimit: {
      tenant: { rps: e.RATE_LIMIT_RPS, burst: e.RATE_LIMIT_BURST ?? Math.max(1, 2 * e.RATE_LIMIT_RPS) },
      anonymous: { rps: e.RATE_LIMIT_ANON_RPS, burst: e.RATE_LIMIT_ANON_BURST },
    },
    maxLiveJobsPerTenant: e.MAX_QUEUED_JOBS_PER_TENANT,
    maxDatasetUploads: e.MAX_DATASET_UPLOADS,
    healthProbeMs: e.HEALTH_PROBE_MS,
    redisStaleMs: e.REDIS_STALE_MS,
    sseMaxBufferBytes: e.SSE_MAX_BUFFER_BYTES,
    sseStallMs: e.SSE_STALL_MS,
  };
}

function loadKeys(inline: string | undefined, file: string | undefined, readFile: (path: string) => string): ApiKeyEntry[] {
  try {
    const entries = inline ? parseApiKeys(inline, 'API_KEYS') : [];
    if (file) {
      let text: string;
      try {
        text = readFile(file);
      } catch (err) {
        throw new Error(`API_KEYS_FILE: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
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
