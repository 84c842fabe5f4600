// Pure parts of the api, loaded directly (they import no NestJS): configuration and the CSV layout.
import { DEFAULT_LIMITS } from '@relu-lstm/jobs';
import { ConfigError, limitEnvName, loadConfig } from '../src/config';
import { parseDatasetCsv } from '../src/datasets/csv';

describe('loadConfig', () => {
  test('defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'relu-lstm',
      bodyLimit: 10 * 1024 * 1024,
      inferWaitMs: 30_000,
      limits: DEFAULT_LIMITS,
    });
    expect(c.artifactDir).toMatch(/data\/artifacts$/);
  });

  test('sizes, limits and empty values', () => {
    const c = loadConfig({ BODY_LIMIT: '512kb', DATASET_BODY_LIMIT: '2mb', PORT: '', LIMIT_MAX_HIDDEN_SIZE: '64', JOB_ATTEMPTS_TRAIN: '5' });
    expect(c.bodyLimit).toBe(512 * 1024);
    expect(c.datasetBodyLimit).toBe(2 * 1024 * 1024);
    expect(c.port).toBe(3000);
    expect(c.limits.maxHiddenSize).toBe(64);
    expect(c.jobPolicy.attempts.train).toBe(5);
    expect(limitEnvName('maxInlineElements')).toBe('LIMIT_MAX_INLINE_ELEMENTS');
  });

  test('every bad variable is named', () => {
    expect(() => loadConfig({ PORT: '70000', REDIS_URL: 'http://x', BODY_LIMIT: 'lots', QUEUE_PREFIX: 'has space' })).toThrow(ConfigError);
    try {
      loadConfig({ PORT: '70000', REDIS_URL: 'http://x', BODY_LIMIT: 'lots', QUEUE_PREFIX: 'has space' });
    } catch (e) {
      for (const v of ['PORT', 'REDIS_URL', 'BODY_LIMIT', 'QUEUE_PREFIX']) expect((e as Error).message).toContain(v);
    }
  });
});

describe('dataset CSV', () => {
  test('per-step targets, header columns in any order', () => {
    const r = parseDatasetCsv('sample,step,y0,x1,x0\n1,0,0.5,2,1\n1,1,0.6,4,3\n');
    expect(r).toEqual({ ok: true, value: { x: [[[1, 2], [3, 4]]], y: [[[0.5], [0.6]]] } });
  });

  test('one target per sequence, ragged lengths padded', () => {
    const r = parseDatasetCsv('sample,step,x0,y0,y1\r\na,0,1,,\r\na,1,2,7,8\r\nb,0,3,9,10\r\n');
    expect(r).toEqual({ ok: true, value: { x: [[[1], [2]], [[3], [0]]], y: [[7, 8], [9, 10]], lengths: [2, 1] } });
  });

  test.each([
    ['', 'line 1', 'empty upload'],
    ['sample,step,x0\n', 'line 1', 'no y columns'],
    ['sample,step,x0,x2,y0\n', 'line 1.x1', 'missing column'],
    ['sample,step,x0,y0,z\n', 'line 1.z', 'unknown column'],
    ['sample,step,x0,y0\na,1,1,1\n', 'line 2.step', 'steps of a sample'],
    ['sample,step,x0,y0\na,0,1\n', 'line 2', 'wrong number of cells'],
    ['sample,step,x0,y0\na,0,1,\na,1,2,\n', 'line 3.y0', "missing target on a sample's last row"],
    ['sample,step,x0,y0\na,0,1,5\na,1,2,\n', 'line 2.y0', 'targets on every row'],
    ['sample,step,x0,y0\na,0,NaN,1\n', 'line 2.x0', 'not a finite number'],
  ])('%j -> %s', (csv, path, message) => {
    const r = parseDatasetCsv(csv);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.issues[0]).toMatchObject({ path, message: expect.stringContaining(message) });
  });
});
