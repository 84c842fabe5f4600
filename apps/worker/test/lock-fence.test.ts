/**
 * The Redis side of fencing (src/jobs/lock-fence.ts) against the real Redis, with lock keys set the
 * way BullMQ sets them (`SET <prefix>:<queue>:<id>:lock <token> PX ...`), and the store side as the
 * worker combines them, on the file store and on a real S3 server (s3rver): two attempts that both
 * finish a job leave exactly one visible artifact set, the first one published, and nothing a
 * stale attempt staged is ever listed or downloadable.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import {
  ArtifactNotFoundError,
  RedisPublishedSets,
  openArtifactStore,
  redisKeys,
  type ArtifactStore,
} from '@relu-lstm/jobs';
import { S3Server } from '../../../libs/jobs/test/s3-server';
import { choosePublication, lockKeyOf, setIfHolder, stageIdOf, type Publication } from '../src/jobs/lock-fence';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `wf-${randomBytes(5).toString('hex')}`;
const keys = redisKeys(prefix);
const BUCKET = 'fence';
let redis: Redis;
let dir: string;
let s3: S3Server;

beforeAll(async () => {
  redis = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  dir = mkdtempSync(path.join(os.tmpdir(), 'lock-fence-'));
  s3 = await S3Server.start();
  await s3.createBucket(BUCKET);
});

afterAll(async () => {
  const left = await redis.keys(`${prefix}:*`);
  if (left.length) await redis.del(...left);
  await redis.quit();
  rmSync(dir, { recursive: true, force: true });
  await s3?.stop();
});

const NAMES = ['model.safetensors', 'config.json'];

const record = (stage: string, attempt: number): Publication => ({
  stage,
  names: NAMES,
  layout: 'attempt',
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

const text = async (store: ArtifactStore, jobId: string, name: string) =>
  (await store.get(jobId, name)).toString('utf8');

async function readStream(stream: NodeJS.ReadableStream): Promise<string> {
  let s = '';
  for await (const c of stream) s += Buffer.from(c as Uint8Array).toString('utf8');
  return s;
}

/** Every name a reader can reach for the job: listed, or opened by a name a stale attempt staged. */
async function visible(store: ArtifactStore, jobId: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const a of await store.list(jobId)) out[a.name] = await readStream((await store.open(jobId, a.name)).stream);
  return out;
}

describe.each([
  ['file', () => openArtifactStore(dir, { published: new RedisPublishedSets(redis, keys) })],
  [
    's3 (s3rver)',
    () =>
      openArtifactStore(`s3://${BUCKET}/${randomUUID()}`, {
        published: new RedisPublishedSets(redis, keys),
        env: s3.env(),
      }),
  ],
])('publishing on the %s store', (_name, makeStore) => {
  let store: ArtifactStore;
  beforeAll(() => {
    store = makeStore();
  });

  it('choosePublication: one set per job; a later holder gets the first set; a stale writer gets nothing', async () => {
    const jobId = randomUUID();
    const lock = `${prefix}:any:${jobId}:lock`;
    const published = keys.published(jobId);

    // Attempt A holds the lock, stages its files and publishes them...
    await redis.set(lock, 'tokA', 'PX', 10_000);
    const a = stageIdOf('tokA');
    await store.stage(jobId, a, 'model.safetensors', 'A-model');
    await store.stage(jobId, a, 'config.json', 'A-config');
    expect(await store.list(jobId)).toEqual([]); // staged is not published
    expect(await choosePublication(redis, lock, published, 'tokA', record(a, 1))).toMatchObject({
      stage: a,
      attempt: 1,
    });
    // No TTL of its own: the record lives as long as the artifacts it points to.
    expect(await redis.pttl(published)).toBe(-1);
    expect(await visible(store, jobId)).toEqual({ 'config.json': 'A-config', 'model.safetensors': 'A-model' });
    // ...and stops before tidying (paused). Its lock lapses; attempt B takes the job, finishes,
    // and is handed A's set: B's own stage is never seen.
    await redis.set(lock, 'tokB', 'PX', 10_000);
    const b = stageIdOf('tokB');
    await store.stage(jobId, b, 'model.safetensors', 'B-model');
    await store.stage(jobId, b, 'config.json', 'B-config');
    const chosen = await choosePublication(redis, lock, published, 'tokB', record(b, 2));
    expect(chosen).toMatchObject({ stage: a, attempt: 1, result: { attempt: 1 } });
    expect(await visible(store, jobId)).toEqual({ 'config.json': 'A-config', 'model.safetensors': 'A-model' });
    await store.discardStaged(jobId, b);
    await store.pruneStages(jobId, chosen!.stage);
    // A wakes up: it may not publish again, and the record stays as it was.
    const before = await redis.get(published);
    expect(await choosePublication(redis, lock, published, 'tokA', record(a, 1))).toBeNull();
    expect(await redis.get(published)).toBe(before);
    expect(await text(store, jobId, 'model.safetensors')).toBe('A-model');
    // No lock (the job finished, or lapsed unclaimed): nobody publishes.
    await redis.del(lock);
    expect(await choosePublication(redis, lock, published, 'tokB', record(b, 2))).toBeNull();
    expect(await redis.get(published)).toBe(before);
  });

  it("a fenced-off attempt's staged objects are never listed nor downloadable, before or after the publication", async () => {
    const jobId = randomUUID();
    const lock = `${prefix}:any:${jobId}:lock`;
    const published = keys.published(jobId);
    const stale = stageIdOf('tokStale');
    const holder = stageIdOf('tokHolder');
    // The stale attempt lost the lock before staging; it stages its whole set anyway.
    await redis.set(lock, 'tokHolder', 'PX', 10_000);
    await store.stage(jobId, stale, 'model.safetensors', 'stale-model');
    await store.stage(jobId, stale, 'config.json', 'stale-config');
    await store.stage(jobId, stale, 'stale-only.json', 'stale');
    const unseen = async () => {
      for (const n of [...NAMES, 'stale-only.json']) {
        await expect(store.get(jobId, n)).rejects.toBeInstanceOf(ArtifactNotFoundError);
        await expect(store.open(jobId, n)).rejects.toBeInstanceOf(ArtifactNotFoundError);
        expect(await store.exists(jobId, n)).toBe(false);
      }
      expect(await store.list(jobId)).toEqual([]);
    };
    await unseen(); // a crash here (staged, never published) leaves nothing visible
    expect(await choosePublication(redis, lock, published, 'tokStale', record(stale, 1))).toBeNull();
    expect(await redis.exists(published)).toBe(0);
    await unseen();

    // The holder publishes; the stale attempt's objects (even one it stages afterwards) stay unseen.
    await store.stage(jobId, holder, 'model.safetensors', 'holder-model');
    await store.stage(jobId, holder, 'config.json', 'holder-config');
    expect(await choosePublication(redis, lock, published, 'tokHolder', record(holder, 2))).toMatchObject({
      stage: holder,
    });
    await store.stage(jobId, stale, 'model.safetensors', 'stale-again');
    expect(await visible(store, jobId)).toEqual({
      'config.json': 'holder-config',
      'model.safetensors': 'holder-model',
    });
    await expect(store.get(jobId, 'stale-only.json')).rejects.toBeInstanceOf(ArtifactNotFoundError);

    // Retention removes the job: every attempt's objects go.
    await store.remove(jobId);
    expect(await store.list(jobId)).toEqual([]);
    const left: string[] = [];
    for await (const j of store.jobs()) if (j.jobId === jobId) left.push(j.jobId);
    expect(left).toEqual([]);
  });
});
