/**
 * Name, tags and priority through the QueueClient producer against the real Redis and BullMQ, every
 * test under a prefix of its own that is removed afterwards: where they land (meta, job data, the
 * search index), that bad ones write nothing, and the order BullMQ will hand jobs out in under the
 * fair-share rule (producer.ts `FAIR_SHARE`), read back from BullMQ's own prioritized set.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PayloadValidationError, QueueClient } from '@relu-lstm/client';
import { CANONICAL_TRAIN_EXAMPLE, FAIR_SHARE, redisKeys, type InferPayloadInput, type JobData } from '@relu-lstm/jobs';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const INFER: InferPayloadInput = {
  model: {
    config: { inputSize: 1, hiddenSize: 1, outputSize: 1 },
    stateDict: {
      weight_ih_l0: [[0.1], [0.2], [0.3], [0.4]],
      weight_hh_l0: [[0.1], [0.2], [0.3], [0.4]],
      'head.weight': [[1]],
      'head.bias': [0],
    },
  },
  inputs: [[[0.5]]],
  device: 'cpu',
};

let prefix: string;
let admin: Redis;
let clients: QueueClient[];
let queues: Queue[];

function client(tenant: string): QueueClient {
  const c = new QueueClient({ connection: REDIS_URL, prefix, tenant });
  clients.push(c);
  return c;
}

function queue(name: string): Queue<JobData> {
  const q = new Queue<JobData>(name, { connection: { url: REDIS_URL }, prefix });
  queues.push(q);
  return q;
}

async function keysUnder(p: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', `${p}:*`, 'COUNT', 1000);
    out.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return out.sort();
}

/** Ids of the queue's waiting jobs in the order BullMQ hands them out. */
async function handOutOrder(name: string): Promise<string[]> {
  return admin.zrange(`${prefix}:${name}:prioritized`, '0', '-1');
}

beforeEach(() => {
  prefix = `test-opts-${randomUUID()}`;
  admin = new Redis(REDIS_URL);
  clients = [];
  queues = [];
});

afterEach(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  for (const q of queues) await q.obliterate({ force: true }).catch(() => undefined);
  await Promise.allSettled(queues.map((q) => q.close()));
  const left = await keysUnder(prefix);
  if (left.length) await admin.del(...left);
  await admin.quit();
});

test('name, tags and priority land in the meta, the job data and the search index', async () => {
  const qc = client('team-a');
  const job = await qc.submitTrain(CANONICAL_TRAIN_EXAMPLE, {
    name: 'sine run 3',
    tags: { project: 'sine', lr: '0.01' },
    priority: 2,
  });
  const keys = redisKeys(prefix);
  expect(JSON.parse((await admin.get(keys.jobMeta(job.id)))!)).toMatchObject({
    name: 'sine run 3',
    tags: { project: 'sine', lr: '0.01' },
    priority: 2,
  });
  const bull = await queue('any').getJob(job.id);
  expect(bull?.data).toMatchObject({ name: 'sine run 3', tags: { project: 'sine', lr: '0.01' } });
  for (const filter of [
    { type: 'train' as const },
    { name: 'sine run 3' },
    { tag: ['project', 'sine'] as const },
    { tag: ['lr', '0.01'] as const },
  ])
    expect(await admin.zrange(keys.jobFilterIndex('team-a', filter), '0', '-1')).toEqual([job.id]);
  // Without options: priority 5, no name or tags, only the listing and the type index.
  const plain = await qc.submitInfer(INFER);
  expect(JSON.parse((await admin.get(keys.jobMeta(plain.id)))!)).toMatchObject({ priority: 5 });
  expect((await keysUnder(`${prefix}:jobix:team-a`)).length).toBe(5);
});

test('bad names, tags and priorities are refused naming the field, and nothing is written', async () => {
  const qc = client('default');
  const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
  const cases: Array<[object, string]> = [
    [{ priority: 0 }, 'priority'],
    [{ priority: 11 }, 'priority'],
    [{ priority: 2.5 }, 'priority'],
    [{ name: '' }, 'name'],
    [{ name: ' padded' }, 'name'],
    [{ name: 'x'.repeat(129) }, 'name'],
    [{ tags: { 'a:b': 'v' } }, 'tags.a:b'],
    [{ tags: { ok: 'line\nbreak' } }, 'tags.ok'],
    [{ tags: tooMany }, 'tags'],
  ];
  for (const [options, field] of cases) {
    const err = (await qc.submitInfer(INFER, options).catch((e: unknown) => e)) as PayloadValidationError;
    expect(err).toBeInstanceOf(PayloadValidationError);
    expect(err.fields[0]).toBe(field);
  }
  expect(await keysUnder(prefix)).toEqual([]);
});

test("fair share: a tenant's flood does not hold back another tenant's job; within a tenant, priority orders", async () => {
  const a = client('tenant-a');
  const b = client('tenant-b');
  const flood = [];
  for (let i = 0; i < 50; i++) flood.push((await a.submitInfer(INFER, { priority: 10 })).id);
  const urgentB = await b.submitInfer(INFER, { priority: 1 });
  const lowB = await b.submitInfer(INFER, { priority: 10 });
  const urgentA = await a.submitInfer(INFER, { priority: 1 });
  const order = await handOutOrder('cpu');
  expect(order).toHaveLength(53);
  // B's urgent job first (turn 0, priority 1), then A's urgent one (its own turn 0 at priority 1,
  // ahead of A's own flood), A's first flood job (turn 0), then turn 1: A's second and B's low one
  // (B's turn 0 went to its urgent job), in submission order.
  expect(order.slice(0, 5)).toEqual([urgentB.id, urgentA.id, flood[0], flood[1], lowB.id]);
  expect(order.slice(5)).toEqual(flood.slice(2));
  expect(urgentB.bullPriority).toBe(1);
  expect(flood.length).toBe(50);
  // A's flood took turns 0..49: the last one's BullMQ priority says so.
  expect(Number(await admin.zscore(`${prefix}:cpu:prioritized`, flood[49]))).toBeGreaterThanOrEqual(
    (49 * FAIR_SHARE.levels + 10) * 2 ** 32,
  );
});

test('a tenant arriving later starts at the turn the queue has reached, not ahead of jobs waiting longer', async () => {
  const a = client('tenant-a');
  const b = client('tenant-b');
  const flood = [];
  for (let i = 0; i < 6; i++) flood.push((await a.submitInfer(INFER, { priority: 5 })).id);
  // Workers took A's first four: the queue is at A's turn 4.
  await admin.zrem(`${prefix}:cpu:prioritized`, ...flood.slice(0, 4));
  const lateB = [];
  for (let i = 0; i < 3; i++) lateB.push((await b.submitInfer(INFER, { priority: 5 })).id);
  expect(await handOutOrder('cpu')).toEqual([flood[4], lateB[0], flood[5], lateB[1], lateB[2]]);
});
