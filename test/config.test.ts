/**
 * The variables the api and the worker share mean the same in both: the same values are accepted
 * and give the same settings, and a bad one is refused by both with the same line.
 */
import { COMMON_ENV } from '@relu-lstm/jobs';
import { loadConfig } from '../apps/api/src/config';
import { loadWorkerConfig } from '../apps/worker/src/config';

const refusal = (load: () => unknown): string => {
  try {
    load();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('accepted');
};

test('the same values give the same settings', () => {
  const env = {
    REDIS_URL: ' rediss://:pw@r:6380/1 ',
    QUEUE_PREFIX: 'p-1',
    ARTIFACT_DIR: 'rel/a',
    DATASET_DIR: '/abs/d',
    LOG_LEVEL: 'warn',
  };
  const api = loadConfig(env);
  const worker = loadWorkerConfig(env);
  const shared = (c: {
    redisUrl: string;
    queuePrefix: string;
    artifactDir: string;
    datasetDir: string;
    logLevel: string;
  }) => ({
    redisUrl: c.redisUrl,
    queuePrefix: c.queuePrefix,
    artifactDir: c.artifactDir,
    datasetDir: c.datasetDir,
    logLevel: c.logLevel,
  });
  expect(shared(worker)).toEqual(shared(api));
  expect(shared(api)).toEqual({
    redisUrl: 'rediss://:pw@r:6380/1',
    queuePrefix: 'p-1',
    artifactDir: `${process.cwd()}/rel/a`,
    datasetDir: '/abs/d',
    logLevel: 'warn',
  });
  expect(shared(loadWorkerConfig({}))).toEqual(shared(loadConfig({})));
});

test.each([
  ['REDIS_URL', 'http://:hunter2@x'],
  ['REDIS_URL', 'redis//x'],
  ['QUEUE_PREFIX', 'a:b'],
  ['LOG_LEVEL', 'loud'],
])('%s=%s is refused by both with the same line', (name, value) => {
  expect(Object.keys(COMMON_ENV)).toContain(name);
  const line = (message: string) =>
    message
      .split('\n')
      .find((l) => l.trim().startsWith(`${name}:`))
      ?.trim();
  const api = line(refusal(() => loadConfig({ [name]: value })));
  expect(api).toMatch(new RegExp(`^${name}: expected .* \\(got .*\\)$`));
  expect(line(refusal(() => loadWorkerConfig({ [name]: value })))).toBe(api);
  expect(api).not.toContain('hunter2');
});
