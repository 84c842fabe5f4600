/**
 * Environment variables, each defined once: its name (the key of a spec), its default (written as
 * the variable would be set), how its value is parsed and checked, and what it means. The api, the
 * worker and `scripts/start.js` read their variables through `parseEnv`, so a variable they share
 * means and accepts the same thing in each. Blank values count as unset; values are trimmed.
 */
import { DEFAULT_LIMITS, type PayloadLimits } from './limits';
import { DEFAULT_QUEUE_PREFIX, QUEUE_PREFIX_PATTERN } from './queues';
import { storeLocation } from './stores';

export interface EnvVar<T> {
  readonly description: string;
  /** The value when unset, as it would be written in the environment; `''`: none (`parse('')`). */
  readonly default: string;
  /** Parses a non-blank, trimmed value (or `''` for an unset one without default); throws `expected ...`. */
  readonly parse: (raw: string) => T;
  /** Never printed in errors (a password in a URL, key hashes): only its length is. */
  readonly secret?: boolean;
}

export type EnvSpec = Readonly<Record<string, EnvVar<unknown>>>;
export type EnvValues<S extends EnvSpec> = { -readonly [K in keyof S]: ReturnType<S[K]['parse']> };

/** One line per bad variable: `NAME: expected ... (got "value")`. */
export class EnvError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'EnvError';
  }
}

export const envVar = <T>(v: EnvVar<T>): EnvVar<T> => v;

/** An integer variable from `min` to `max`. */
export function intVar(o: { description: string; min: number; max: number; default: number }): EnvVar<number> {
  return { description: o.description, default: String(o.default), parse: integer(o.min, o.max) };
}

/** An optional variable: unset gives `undefined`, a value is parsed by `parse`. */
export function optional<T>(v: {
  description: string;
  parse: (raw: string) => T;
  secret?: boolean;
}): EnvVar<T | undefined> {
  return { ...v, default: '', parse: (raw) => (raw === '' ? undefined : v.parse(raw)) };
}

/** Parses every variable of `spec` from `env`; the problems name each bad one. */
export function parseEnv<S extends EnvSpec>(
  spec: S,
  env: Readonly<Record<string, string | undefined>>,
): { values: EnvValues<S>; problems: string[] } {
  const values: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [name, v] of Object.entries(spec)) {
    const raw = env[name]?.trim() ?? '';
    try {
      values[name] = v.parse(raw === '' ? v.default : raw);
    } catch (err) {
      const got = raw === '' ? 'the default' : v.secret ? `${raw.length} characters` : JSON.stringify(raw);
      problems.push(`${name}: ${(err as Error).message} (got ${got})`);
    }
  }
  return { values: values as EnvValues<S>, problems };
}

/** `parseEnv`, throwing `EnvError` when a variable is bad. */
export function readEnv<S extends EnvSpec>(spec: S, env: Readonly<Record<string, string | undefined>>): EnvValues<S> {
  const { values, problems } = parseEnv(spec, env);
  if (problems.length) throw new EnvError(problems);
  return values;
}

// Parsers: each throws an Error whose message says what was expected.

export function integer(min: number, max: number): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    if (!/^[+-]?\d+$/.test(raw) || n < min || n > max) throw new Error(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

/** A number strictly between `above` and `below`. */
export function between(above: number, below: number): (raw: string) => number {
  return (raw) => {
    const n = Number(raw);
    if (!/^[+-]?(\d+\.?\d*|\.\d+)$/.test(raw) || !(n > above && n < below))
      throw new Error(`expected a number greater than ${above} and less than ${below}`);
    return n;
  };
}

export function oneOf<const V extends string>(values: readonly V[]): (raw: string) => V {
  return (raw) => {
    if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(', ')}`);
    return raw as V;
  };
}

export function matching(pattern: RegExp, expected: string): (raw: string) => string {
  return (raw) => {
    if (!pattern.test(raw)) throw new Error(`expected ${expected}`);
    return raw;
  };
}

export function nonEmpty(raw: string): string {
  if (raw === '') throw new Error('expected a value');
  return raw;
}

/** A URL whose protocol is one of `protocols` (`'redis:'`), else `expected …`. */
function urlOf(protocols: readonly string[], expected: string): (raw: string) => string {
  return (raw) => {
    let protocol = '';
    try {
      protocol = new URL(raw).protocol;
    } catch {
      // not a URL: refused below
    }
    if (!protocols.includes(protocol)) throw new Error(`expected ${expected}`);
    return raw;
  };
}

export const redisUrl = urlOf(['redis:', 'rediss:'], 'a redis:// or rediss:// URL');
export const httpUrl = urlOf(['http:', 'https:'], 'an http:// or https:// URL');

/**
 * The S3 connection of an `s3://bucket/prefix` store (`ARTIFACT_DIR`, `DATASET_DIR`): checked at start
 * with `COMMON_ENV`, read where such a store is opened. Without the keys the SDK's default chain
 * applies (instance roles, profiles).
 */
export const S3_ENV = {
  AWS_REGION: envVar({ description: 'S3 region', default: 'us-east-1', parse: nonEmpty }),
  AWS_ACCESS_KEY_ID: optional({ description: 'S3 access key id', parse: nonEmpty }),
  AWS_SECRET_ACCESS_KEY: optional({ description: 'S3 secret access key', parse: nonEmpty, secret: true }),
  S3_ENDPOINT: optional({ description: 'a non-AWS S3 server (MinIO, Garage, s3rver): its URL', parse: httpUrl }),
  S3_FORCE_PATH_STYLE: envVar({
    description: 'true: bucket in the path (most non-AWS servers), false: in the host name',
    default: 'false',
    parse: (raw) => oneOf(['true', 'false'])(raw) === 'true',
  }),
};

export const LOG_LEVELS = ['error', 'warn', 'log', 'debug', 'verbose'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** `auto`: pretty on a terminal, JSON lines otherwise (logging.ts). */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** What the api and the worker must agree on: where Redis is, the key prefix, the shared stores. */
export const COMMON_ENV = {
  REDIS_URL: envVar({
    description: 'Redis, password in the URL',
    default: 'redis://127.0.0.1:6379',
    parse: redisUrl,
    secret: true,
  }),
  QUEUE_PREFIX: envVar({
    description: 'BullMQ prefix and prefix of every other key',
    default: DEFAULT_QUEUE_PREFIX,
    parse: matching(QUEUE_PREFIX_PATTERN, `one key segment (${QUEUE_PREFIX_PATTERN.source})`),
  }),
  ARTIFACT_DIR: envVar({
    description: 'artifact store (a directory or s3://bucket/prefix), shared by the api and the workers',
    default: './data/artifacts',
    parse: (raw) => storeLocation(raw),
  }),
  DATASET_DIR: envVar({
    description: 'dataset store (a directory or s3://bucket/prefix), shared by the api and the workers',
    default: './data/datasets',
    parse: (raw) => storeLocation(raw),
  }),
  LOG_LEVEL: envVar({ description: 'the lowest level logged', default: 'log', parse: oneOf(LOG_LEVELS) }),
  LOG_FORMAT: envVar({
    description: 'json (one JSON object a line), pretty (text), or auto: pretty on a terminal, json otherwise',
    default: 'auto',
    parse: oneOf(LOG_FORMATS),
  }),
  ...S3_ENV,
};

/** Read by the worker (and by `npm start`, to choose how many workers to start). */
export const BACKEND_ENV = {
  RELU_LSTM_BACKEND: envVar({
    description: 'tensorflow, webgpu, wasm, cpu or auto (checked by the library)',
    default: 'auto',
    parse: (raw) => raw.toLowerCase(),
  }),
};

/** `maxHiddenSize` -> `LIMIT_MAX_HIDDEN_SIZE`. */
export const limitEnvName = (key: keyof PayloadLimits): string =>
  `LIMIT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as Array<keyof PayloadLimits>;

/** One `LIMIT_*` variable per payload limit, defaulting to `DEFAULT_LIMITS`. */
export const LIMIT_ENV: Readonly<Record<string, EnvVar<number>>> = Object.fromEntries(
  LIMIT_KEYS.map((k) => [
    limitEnvName(k),
    intVar({ description: `payload limit ${k}`, min: 1, max: Number.MAX_SAFE_INTEGER, default: DEFAULT_LIMITS[k] }),
  ]),
);

/** The payload limits from parsed `LIMIT_ENV` values. */
export function limitsFromEnv(values: Readonly<Record<string, number>>): PayloadLimits {
  return Object.fromEntries(LIMIT_KEYS.map((k) => [k, values[limitEnvName(k)]])) as unknown as PayloadLimits;
}
