// The one parser of environment variables the api, the worker and scripts/start.js share.
import {
  COMMON_ENV,
  EnvError,
  LIMIT_ENV,
  between,
  envVar,
  integer,
  limitEnvName,
  limitsFromEnv,
  optional,
  parseEnv,
  readEnv,
  DEFAULT_LIMITS,
} from '@relu-lstm/jobs';

const SPEC = {
  PORT: envVar({ description: 'a port', default: '3000', parse: integer(0, 65535) }),
  RATIO: envVar({ description: 'a ratio', default: '0.5', parse: between(0, 1) }),
  TOKEN: optional({ description: 'a secret', parse: String, secret: true }),
};

test('unset and blank take the default; values are trimmed; optional ones are undefined when unset', () => {
  expect(readEnv(SPEC, {})).toEqual({ PORT: 3000, RATIO: 0.5, TOKEN: undefined });
  expect(readEnv(SPEC, { PORT: '  ', RATIO: '', TOKEN: '' })).toEqual({ PORT: 3000, RATIO: 0.5, TOKEN: undefined });
  expect(readEnv(SPEC, { PORT: ' 8080 ', RATIO: '.25', TOKEN: ' t ' })).toEqual({
    PORT: 8080,
    RATIO: 0.25,
    TOKEN: 't',
  });
});

test('every bad variable is named with what was expected and what it got; secrets by length only', () => {
  const { problems } = parseEnv(SPEC, { PORT: '70000', RATIO: '1', TOKEN: 'x' });
  expect(problems).toEqual([
    'PORT: expected an integer from 0 to 65535 (got "70000")',
    'RATIO: expected a number greater than 0 and less than 1 (got "1")',
  ]);
  const bad = { ...SPEC, TOKEN: envVar({ description: 'a secret', default: '', parse: integer(1, 2), secret: true }) };
  expect(() => readEnv(bad, { PORT: '1.5', TOKEN: 'hunter2' })).toThrow(EnvError);
  expect(() => readEnv(bad, { PORT: '1.5', TOKEN: 'hunter2' })).toThrow(
    'invalid configuration:\n  PORT: expected an integer from 0 to 65535 (got "1.5")\n  TOKEN: expected an integer from 1 to 2 (got 7 characters)',
  );
});

test('integers are decimal digits only', () => {
  for (const raw of ['1e3', '0x10', '1.0', 'ten', '5 5'])
    expect(() => integer(0, 10_000)(raw)).toThrow('expected an integer from 0 to 10000');
  expect(integer(-5, 5)('-5')).toBe(-5);
});

test('the shared variables: redis URLs, the key prefix, directories resolved, log levels', () => {
  const ok = readEnv(COMMON_ENV, { REDIS_URL: 'rediss://:p@h:6380/2', ARTIFACT_DIR: 'rel/a', LOG_LEVEL: 'debug' });
  expect(ok).toMatchObject({ REDIS_URL: 'rediss://:p@h:6380/2', QUEUE_PREFIX: 'relu-lstm', LOG_LEVEL: 'debug' });
  expect(ok.ARTIFACT_DIR).toBe(`${process.cwd()}/rel/a`);
  expect(ok.DATASET_DIR).toBe(`${process.cwd()}/data/datasets`);
  const { problems } = parseEnv(COMMON_ENV, { REDIS_URL: 'http://x', QUEUE_PREFIX: 'a:b', LOG_LEVEL: 'loud' });
  expect(problems.map((p) => p.split(':')[0])).toEqual(['REDIS_URL', 'QUEUE_PREFIX', 'LOG_LEVEL']);
  expect(problems[2]).toBe('LOG_LEVEL: expected one of error, warn, log, debug, verbose (got "loud")');
});

test('one LIMIT_* variable per payload limit, defaulting to DEFAULT_LIMITS', () => {
  expect(limitEnvName('maxInlineElements')).toBe('LIMIT_MAX_INLINE_ELEMENTS');
  expect(Object.keys(LIMIT_ENV)).toHaveLength(Object.keys(DEFAULT_LIMITS).length);
  expect(limitsFromEnv(readEnv(LIMIT_ENV, {}))).toEqual(DEFAULT_LIMITS);
  expect(limitsFromEnv(readEnv(LIMIT_ENV, { LIMIT_MAX_LAYERS: '32' })).maxLayers).toBe(32);
  expect(parseEnv(LIMIT_ENV, { LIMIT_MAX_LAYERS: '0' }).problems).toEqual([
    `LIMIT_MAX_LAYERS: expected an integer from 1 to ${Number.MAX_SAFE_INTEGER} (got "0")`,
  ]);
});
