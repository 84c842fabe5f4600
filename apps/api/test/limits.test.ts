// Limits against resource exhaustion, from the configuration (LIMIT_*, BODY_LIMIT,
// DATASET_BODY_LIMIT), and mass assignment: each out-of-range value or unknown field is a 400 naming
// the field, what was allowed and what came, and nothing of it reaches Redis (no queue entry, no
// job record, no dataset).
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { CANONICAL_TRAIN_EXAMPLE, QUEUE_NAMES, type JobData, type QueueName } from '@relu-lstm/jobs';
import { REDIS_URL, http, startApi, type ApiProcess, openApiRedis, type ApiRedis } from './harness';

let api: ApiProcess;
let redis: Redis;
let queues: Record<QueueName, Queue<JobData>>;
let behind: ApiRedis;

type Body = any;
/** The canonical example scaled to fit the limits below (it asks for 256 samples in batches of 32). */
const canonical = (): Body => {
  const b = JSON.parse(JSON.stringify(CANONICAL_TRAIN_EXAMPLE));
  b.data.synthetic.samples = 64;
  b.training.batchSize = 16;
  return b;
};

const ENV = {
  LIMIT_MAX_HIDDEN_SIZE: '32',
  LIMIT_MAX_LAYERS: '2',
  LIMIT_MAX_SEQ_LEN: '50',
  LIMIT_MAX_BATCH_SIZE: '16',
  LIMIT_MAX_EPOCHS: '10',
  LIMIT_MAX_SAMPLES: '100',
  LIMIT_MAX_INPUT_SIZE: '8',
  LIMIT_MAX_OUTPUT_SIZE: '8',
  LIMIT_MAX_INLINE_ELEMENTS: '1000',
  BODY_LIMIT: '16kb',
  DATASET_BODY_LIMIT: '24kb',
};

/** Everything the api may have written under the prefix, and what the queues hold. */
async function footprint(): Promise<{ keys: string[]; queued: number }> {
  const keys = (await redis.keys(`${api.prefix}:*`)).filter(
    // A BullMQ queue's meta key (job queues, sweeps) is written once, when the queue first connects.
    (k) => !k.startsWith(`${api.prefix}:rate:`) && !/^[^:]+:meta$/.test(k.slice(api.prefix.length + 1)),
  );
  let queued = 0;
  for (const q of QUEUE_NAMES) queued += Object.values(await queues[q].getJobCounts()).reduce((a, b) => a + b, 0);
  return { keys: keys.sort(), queued };
}

beforeAll(async () => {
  api = await startApi(ENV);
  behind = openApiRedis(api.prefix, REDIS_URL);
  ({ redis, queues } = behind);
});

afterAll(async () => {
  const code = await api?.stop();
  await behind?.close();
  expect(code).toBe(0);
});

const train = (edit: (b: Body) => void): Body => {
  const b = canonical();
  edit(b);
  return b;
};
const seq = (n: number, t: number, i: number) =>
  Array.from({ length: n }, () => Array.from({ length: t }, () => Array.from({ length: i }, () => 0.5)));

// [what, route, body, path, expected, received]
const CASES: Array<[string, string, Body, string, string, string]> = [
  ['hidden size', '/v1/jobs/train', train((b) => (b.model.hiddenSize = 33)), 'model.hiddenSize', '<= 32', '33'],
  ['layers', '/v1/jobs/train', train((b) => (b.model.numLayers = 3)), 'model.numLayers', '<= 2', '3'],
  [
    'input size',
    '/v1/jobs/train',
    train((b) => ((b.model.inputSize = 9), (b.data = { inline: { x: seq(1, 2, 9), y: seq(1, 2, 1) } }))),
    'model.inputSize',
    '<= 8',
    '9',
  ],
  ['output size', '/v1/jobs/train', train((b) => (b.model.outputSize = 9)), 'model.outputSize', '<= 8', '9'],
  [
    'sequence length (synthetic)',
    '/v1/jobs/train',
    train((b) => (b.data.synthetic.seqLen = 51)),
    'data.synthetic.seqLen',
    '<= 50',
    '51',
  ],
  [
    'sequence length (inline)',
    '/v1/jobs/train',
    train((b) => (b.data = { inline: { x: seq(1, 51, 1), y: seq(1, 51, 1) } })),
    'data.inline.x',
    'sequences of at most 50 steps',
    '51',
  ],
  [
    'samples',
    '/v1/jobs/train',
    train((b) => (b.data.synthetic.samples = 101)),
    'data.synthetic.samples',
    '<= 100',
    '101',
  ],
  ['batch size', '/v1/jobs/train', train((b) => (b.training.batchSize = 17)), 'training.batchSize', '<= 16', '17'],
  ['epochs', '/v1/jobs/train', train((b) => (b.training.epochs = 11)), 'training.epochs', '<= 10', '11'],
  [
    'inline elements',
    '/v1/jobs/train',
    train((b) => (b.data = { inline: { x: seq(30, 40, 1), y: seq(30, 40, 1) } })),
    'data.inline.x',
    'at most 1000 numbers',
    '1200',
  ],
  [
    'infer sequence length',
    '/v1/jobs/infer',
    { model: { config: { inputSize: 1, hiddenSize: 2, outputSize: 1 }, stateDict: {} }, inputs: seq(1, 51, 1) },
    'inputs',
    'sequences of at most 50 steps',
    '51',
  ],
  [
    'dataset samples',
    '/v1/datasets',
    { x: seq(101, 1, 1), y: Array.from({ length: 101 }, () => [1]) },
    'x',
    'at most 100 samples',
    '101',
  ],
  [
    'dataset sequence length',
    '/v1/datasets',
    { x: seq(1, 51, 1), y: [[1]] },
    'x',
    'sequences of at most 50 steps',
    '51',
  ],
];

describe('limits from the configuration: 400 naming the field, the bound and the value; nothing stored or queued', () => {
  test.each(CASES)('%s', async (_what, route, body, path, expected, received) => {
    const before = await footprint();
    const r = await http(api.url, 'POST', route, { body });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('invalid_request');
    expect(r.json.error.issues).toContainEqual(expect.objectContaining({ path, expected, received }));
    expect(await footprint()).toEqual(before);
  });

  test('within the limits the same payloads are accepted (the bounds are the configured ones, not lower), and the job carries them', async () => {
    const ok = train((b) => {
      b.model.hiddenSize = 32;
      b.model.numLayers = 2;
      b.data.synthetic = { kind: 'sine', samples: 100, seqLen: 50 };
      b.training.batchSize = 16;
      b.training.epochs = 10;
      b.device = 'gpu';
    });
    const r = await http(api.url, 'POST', '/v1/jobs/train', { body: ok });
    expect(r.status).toBe(202);
    const job = await queues.gpu.getJob(r.json.id);
    // The worker validates with these, not with its defaults.
    expect(job?.data.limits).toMatchObject({
      maxHiddenSize: 32,
      maxLayers: 2,
      maxSeqLen: 50,
      maxBatchSize: 16,
      maxEpochs: 10,
      maxSamples: 100,
    });
    await http(api.url, 'DELETE', `/v1/jobs/${r.json.id}`);
  });

  test('bodies over BODY_LIMIT (16 kb) and DATASET_BODY_LIMIT (24 kb) are 413 before parsing', async () => {
    const before = await footprint();
    const job = await http(api.url, 'POST', '/v1/jobs/train', {
      raw: JSON.stringify({ pad: 'x'.repeat(17 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect([job.status, job.json.error.code, job.json.error.message]).toEqual([
      413,
      'payload_too_large',
      `the body is over the limit of ${16 * 1024} bytes`,
    ]);
    const ds = await http(api.url, 'POST', '/v1/datasets', {
      raw: JSON.stringify({ pad: 'x'.repeat(25 * 1024) }),
      headers: { 'content-type': 'application/json' },
    });
    expect([ds.status, ds.json.error.message]).toEqual([413, `the body is over the limit of ${24 * 1024} bytes`]);
    const csv = await http(api.url, 'POST', '/v1/datasets', {
      raw: `sample,step,x0,y0\n${'a,0,1,1\n'.repeat(4000)}`,
      headers: { 'content-type': 'text/csv' },
    });
    expect(csv.status).toBe(413);
    expect(await footprint()).toEqual(before);
  });
});

describe('mass assignment: job options and ownership cannot be set by the caller', () => {
  const FIELDS: Array<[string, (b: Body) => void, string]> = [
    ['attempts', (b) => (b.attempts = 100), 'attempts'],
    // A top-level `priority` (1..10) is a job option (search.test.ts); inside the payload it is unknown.
    ['priority inside the payload', (b) => (b.training.priority = 1), 'training.priority'],
    ['lock settings', (b) => (b.lockDuration = 1), 'lockDuration'],
    ['BullMQ options', (b) => (b.opts = { attempts: 100 }), 'opts'],
    ['job id', (b) => (b.jobId = 'mine'), 'jobId'],
    ['tenant', (b) => (b.tenant = 'someone-else'), 'tenant'],
    ['nested attempts', (b) => (b.training.attempts = 100), 'training.attempts'],
    ['nested tenant', (b) => (b.model.tenant = 'x'), 'model.tenant'],
  ];
  test.each(FIELDS)('%s', async (_what, edit, path) => {
    const before = await footprint();
    const r = await http(api.url, 'POST', '/v1/jobs/train', { body: train(edit) });
    expect(r.status).toBe(400);
    expect(r.json.error.issues).toEqual([
      {
        path,
        code: 'unrecognized_keys',
        message: `Unknown field "${path.split('.').pop()}"`,
        expected: 'no such field',
        received: 'an unknown field',
      },
    ]);
    expect(await footprint()).toEqual(before);
  });

  test('on infer and datasets too', async () => {
    const before = await footprint();
    const infer = await http(api.url, 'POST', '/v1/jobs/infer', {
      body: { modelJobId: '00000000-0000-4000-8000-000000000000', inputs: [[[1]]], tenant: 'x' },
    });
    expect(infer.json.error.issues).toContainEqual(
      expect.objectContaining({ path: 'tenant', code: 'unrecognized_keys' }),
    );
    const ds = await http(api.url, 'POST', '/v1/datasets', { body: { x: [[[1]]], y: [[1]], tenant: 'x' } });
    expect([ds.status, ds.json.error.issues]).toEqual([
      400,
      [expect.objectContaining({ path: 'tenant', code: 'unrecognized_keys' })],
    ]);
    expect(await footprint()).toEqual(before);
  });
});

test('a limit out of its own range stops start-up naming the variable', async () => {
  const failed = await startApi({ LIMIT_MAX_HIDDEN_SIZE: '0', MAX_QUEUED_JOBS_PER_TENANT: 'many' }).then(
    async (a) => {
      await a.stop();
      return '';
    },
    (e: Error) => e.message,
  );
  expect(failed).toMatch(/exited with 2 before listening/);
  expect(failed).toMatch(/LIMIT_MAX_HIDDEN_SIZE: expected an integer from 1 to \d+ \(got "0"\)/);
  expect(failed).toMatch(/MAX_QUEUED_JOBS_PER_TENANT: expected an integer from 0 to \d+ \(got "many"\)/);
});
