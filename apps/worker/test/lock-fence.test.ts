/**
 * The Redis side of fencing (src/jobs/lock-fence.ts) against the real Redis, with lock keys set the
 * way BullMQ sets them (`SET <prefix>:<queue>:<id>:lock <token> PX ...`), and the file side
 * (ArtifactStore stages) as the worker combines them: two attempts that both finish a job
 * leave exactly one artifact set, the first one chosen, whoever moves the files.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { openArtifactStore } from '@relu-lstm/jobs';
import { choosePublication, lockKeyOf, setIfHolder, stageIdOf, type Publication } from '../src/jobs/lock-fence';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `wf-${randomBytes(5).toString('hex')}`;
let redis: Redis;
let dir: string;

beforeAll(() => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  dir = mkdtempSync(path.join(os.tmpdir(), 'lock-fence-'));
});

afterAll(async () => {
  const keys = await redis.keys(`${prefix}:*`);
  if (keys.length) await redis.del(...keys);
  await redis.quit();
  rmSync(dir, { recursive: true, force: true });
});

const record = (stage: string, attempt: number): Publication => ({
  stage,
  names: ['model.safetensors', 'config.json'],
  attempt,
  workerId: `w${attempt}`,
  at: Date.now(),
  result: { attempt },
});

it("names BullMQ's lock key", () => {
  expect(lockKeyOf({ id: 'j1', prefix: 'p', queueName: 'any' })).toBe('p:any:j1:lock');
  expect(stageIdOf('tok:1')).toMatch(/^[0-9a-f]{24}$/);
  expect(stageIdOf('tok:1')).not.toBe(stageIdOf('tok:2'));
});

it('setIfHolder sets the key only while the token holds the lock', async () => {
  const lock = `${prefix}:any:${randomUUID()}:lock`;
  const key = `${prefix}:ptr:${randomUUID()}`;
  expect(await setIfHolder(redis, lock, 'a', key, 'v0')).toBe(false); // no lock at all
  await redis.set(lock, 'a', 'PX', 10_000);
  expect(await setIfHolder(redis, lock, 'a', key, 'v1')).toBe(true);
  await redis.set(lock, 'b', 'PX', 10_000); // the lock lapsed and another attempt took it
  expect(await setIfHolder(redis, lock, 'a', key, 'stale')).toBe(false);
  expect(await redis.get(key)).toBe('v1');
});

it('choosePublication: one set per job; a later holder gets the first set; a stale writer gets nothing', async () => {
  const jobId = randomUUID();
  const lock = `${prefix}:any:${jobId}:lock`;
  const published = `${prefix}:job:${jobId}:published`;
  const store = openArtifactStore(dir);

  // Attempt A holds the lock, stages its files and is chosen...
  await redis.set(lock, 'tokA', 'PX', 10_000);
  const a = stageIdOf('tokA');
  await store.stage(jobId, a, 'model.safetensors', 'A-model');
  await store.stage(jobId, a, 'config.json', 'A-config');
  expect(await choosePublication(redis, lock, published, 'tokA', record(a, 1))).toMatchObject({ stage: a, attempt: 1 });
  expect(await redis.pttl(published)).toBeGreaterThan(0);
  // ...and stops before moving them (paused). Its lock lapses; attempt B takes the job, finishes,
  // and is handed A's set, which it publishes instead of its own.
  await redis.set(lock, 'tokB', 'PX', 10_000);
  const b = stageIdOf('tokB');
  await store.stage(jobId, b, 'model.safetensors', 'B-model');
  await store.stage(jobId, b, 'config.json', 'B-config');
  const chosen = await choosePublication(redis, lock, published, 'tokB', record(b, 2));
  expect(chosen).toMatchObject({ stage: a, attempt: 1, result: { attempt: 1 } });
  await store.discardStaged(jobId, b);
  expect(await store.publishStaged(jobId, chosen!.stage, chosen!.names)).toBe(2);
  // A wakes up: it may not choose again, and moving its stage moves nothing.
  expect(await choosePublication(redis, lock, published, 'tokA', record(a, 1))).toBeNull();
  expect(await store.publishStaged(jobId, a, chosen!.names)).toBe(0);
  expect((await store.get(jobId, 'model.safetensors')).toString()).toBe('A-model');
  expect((await store.get(jobId, 'config.json')).toString()).toBe('A-config');
  expect(readdirSync(path.join(dir, jobId)).sort()).toEqual(['config.json', 'model.safetensors']);
  // No lock (the job finished, or lapsed unclaimed): nobody chooses.
  await redis.del(lock);
  expect(await choosePublication(redis, lock, published, 'tokB', record(b, 2))).toBeNull();
});
