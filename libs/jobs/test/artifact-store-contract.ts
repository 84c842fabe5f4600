/**
 * What every `ArtifactStore` must do, as a suite any implementation runs against itself:
 * `describeArtifactStoreContract('s3', makeS3Store)`. Everything is checked through the interface,
 * except what only the store's own storage can show (a killed writer's leftovers), which the
 * maker provides as `raw`. Published sets are real records in the real Redis (REDIS_URL), under a
 * prefix of the suite's own, written the way the worker's fencing step writes them.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  ATTEMPT_LAYOUT,
  ArtifactNotFoundError,
  FencedWriteError,
  RedisPublishedSets,
  copyModelFiles,
  newModelStorageId,
  redisKeys,
  type ArtifactStore,
  type PublishedSet,
  type PublishedSets,
} from '@relu-lstm/jobs';

export interface ContractStore {
  store: ArtifactStore;
  /** A view of the storage beneath the interface. */
  raw: {
    /** Leaves what a writer killed in the middle of `put(jobId, name, ...)` leaves. */
    leaveKilledPut(jobId: string, name: string): Promise<void>;
    /** How many stored objects (files, keys) the job has, hidden ones included. */
    objects(jobId: string): Promise<number>;
  };
  close(): Promise<void>;
}

const text = (b: Buffer) => b.toString('utf8');

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function jobIds(store: ArtifactStore): Promise<string[]> {
  const out: string[] = [];
  for await (const j of store.jobs()) out.push(j.jobId);
  return out;
}

export function describeArtifactStoreContract(
  name: string,
  makeStore: (published: PublishedSets) => Promise<ContractStore>,
): void {
  describe(`ArtifactStore contract: ${name}`, () => {
    const keys = redisKeys(`asc-${randomBytes(5).toString('hex')}`);
    let redis: Redis;
    let c: ContractStore;
    let store: ArtifactStore;
    let job: string;
    /** What the worker's fencing step records (lock-fence.ts), its reader's fields only. */
    const publish = (jobId: string, set: PublishedSet) => redis.set(keys.published(jobId), JSON.stringify(set));
    beforeAll(async () => {
      redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { maxRetriesPerRequest: null });
      c = await makeStore(new RedisPublishedSets(redis, keys));
      store = c.store;
    });
    afterAll(async () => {
      await c.close();
      const left = await redis.keys(`${keys.prefix}:*`);
      if (left.length) await redis.del(...left);
      await redis.quit();
    });
    beforeEach(() => {
      job = randomUUID();
    });

    test("a model version's files, copied under a storage id of their own, outlive the job's", async () => {
      await store.put(job, 'model.safetensors', new Uint8Array([9, 8, 7]));
      await store.put(job, 'config.json', '{"a":1}');
      await store.put(job, 'metrics.csv', 'epoch\n0\n');
      const sid = newModelStorageId();
      expect(await copyModelFiles(store, job, sid)).toEqual([
        { name: 'model.safetensors', size: 3 },
        { name: 'config.json', size: 7 },
        { name: 'metrics.csv', size: 8 },
      ]);
      await store.remove(job);
      expect([...(await store.get(sid, 'model.safetensors'))]).toEqual([9, 8, 7]);
      expect((await store.list(sid)).map((a) => a.name)).toEqual(['config.json', 'metrics.csv', 'model.safetensors']);
      await store.remove(sid);
      // Without a model nothing is copied and nothing is left.
      const bare = randomUUID();
      await store.put(bare, 'config.json', '{}');
      const sid2 = newModelStorageId();
      await expect(copyModelFiles(store, bare, sid2)).rejects.toBeInstanceOf(ArtifactNotFoundError);
      expect(await store.list(sid2)).toEqual([]);
      await store.remove(bare);
    });

    test('probe: the store answers; a store on a file system also says how much room is left', async () => {
      const p = await store.probe();
      expect(['file', 's3']).toContain(p.kind);
      if (p.kind === 'file') {
        expect(p.freeBytes).toBeGreaterThan(0);
        expect(p.freeBytes).toBeLessThanOrEqual(p.totalBytes!);
      } else {
        expect(p).toEqual({ kind: p.kind });
      }
    });

    test('put, get, list, exists, open as a stream, replace whole', async () => {
      expect(await store.list(job)).toEqual([]);
      expect(await store.put(job, 'state.json', '{"hN":[]}')).toMatchObject({ name: 'state.json', size: 9 });
      await store.put(job, 'model.safetensors', new Uint8Array([1, 2, 3]));
      await store.put(job, 'state.json', '{"hN":[[1]]}');
      expect(text(await store.get(job, 'state.json'))).toBe('{"hN":[[1]]}');
      const listed = await store.list(job);
      expect(listed.map((a) => [a.name, a.size])).toEqual([
        ['model.safetensors', 3],
        ['state.json', 12],
      ]);
      for (const a of listed) expect(Math.abs(a.modifiedAt - Date.now())).toBeLessThan(60_000);
      expect(await store.exists(job, 'model.safetensors')).toBe(true);
      const { info, stream } = await store.open(job, 'model.safetensors');
      expect(info).toMatchObject({ name: 'model.safetensors', size: 3 });
      expect([...(await readAll(stream))]).toEqual([1, 2, 3]);
    });

    test('a large artifact streams back byte for byte', async () => {
      const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 31) % 251);
      await store.put(job, 'model.safetensors', big);
      const { info, stream } = await store.open(job, 'model.safetensors');
      expect(info.size).toBe(big.length);
      expect(Buffer.compare(await readAll(stream), Buffer.from(big))).toBe(0);
    });

    test('missing objects: not found errors, false, empty, ignored removes', async () => {
      await expect(store.get(job, 'model.safetensors')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      await expect(store.open(job, 'model.safetensors')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      expect(await store.exists(job, 'model.safetensors')).toBe(false);
      await store.remove(job, 'model.safetensors');
      await store.remove(job);
      await store.discardStaged(job, 'nostage');
      await store.pruneStages(job, 'nostage');
      await store.put(job, 'config.json', '{}');
      await store.remove(job, 'config.json');
      await expect(store.get(job, 'config.json')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      expect(await store.list(job)).toEqual([]);
    });

    test('names and ids that could leave the job are refused', async () => {
      await expect(store.put('..', 'x.json', '1')).rejects.toThrow(/job id/);
      for (const bad of ['../x', '.hidden', 'a/b', '']) {
        await expect(store.put(job, bad, '1')).rejects.toThrow(/artifact name/);
      }
      await expect(store.get(job, '../../etc/passwd')).rejects.toThrow(/artifact name/);
      await expect(store.stage(job, '../x', 'a.json', '1')).rejects.toThrow(/stage id/);
    });

    test('a fenced put writes only while its fence says yes; a no leaves the artifact as it was', async () => {
      let asked = 0;
      await store.put(job, 'checkpoint.safetensors', 'first', { fence: () => Promise.resolve((asked++, true)) });
      expect(asked).toBe(1);
      const stale = store.put(job, 'checkpoint.safetensors', 'stale', { fence: () => Promise.resolve(false) });
      await expect(stale).rejects.toBeInstanceOf(FencedWriteError);
      expect(text(await store.get(job, 'checkpoint.safetensors'))).toBe('first');
      expect(await c.raw.objects(job)).toBe(1);
    });

    test('stages are invisible until published; the published one is read in place, no other ever', async () => {
      const names = ['model.safetensors', 'config.json'];
      await store.put(job, 'checkpoint.safetensors', 'ckpt');
      await store.stage(job, 'attempt1', 'model.safetensors', new Uint8Array([1, 2]));
      await store.stage(job, 'attempt1', 'config.json', '{"a":1}');
      await store.stage(job, 'attempt1', 'extra.json', 'not in the set');
      await store.stage(job, 'attempt2', 'model.safetensors', new Uint8Array([9, 9]));
      await store.stage(job, 'attempt2', 'config.json', '{"a":2}');
      expect((await store.list(job)).map((a) => a.name)).toEqual(['checkpoint.safetensors']);
      await expect(store.get(job, 'config.json')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      await publish(job, { stage: 'attempt1', names, layout: ATTEMPT_LAYOUT });
      // The set, read in place: its names only; the plain checkpoint and attempt 2 are not seen.
      expect((await store.list(job)).map((a) => [a.name, a.size])).toEqual([
        ['config.json', 7],
        ['model.safetensors', 2],
      ]);
      expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1, 2]);
      expect(text(await readAll((await store.open(job, 'config.json')).stream))).toBe('{"a":1}');
      expect(await store.exists(job, 'extra.json')).toBe(false);
      expect(await store.exists(job, 'checkpoint.safetensors')).toBe(false);
      await expect(store.open(job, 'checkpoint.safetensors')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      // Tidying keeps the published stage only; a stale attempt staging afterwards stays unseen.
      await store.pruneStages(job, 'attempt1');
      await store.remove(job, 'checkpoint.safetensors');
      expect(await c.raw.objects(job)).toBe(3);
      await store.stage(job, 'attempt2', 'model.safetensors', new Uint8Array([6]));
      expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1, 2]);
      expect((await store.list(job)).map((a) => a.name)).toEqual(['config.json', 'model.safetensors']);
    });

    test('a record of the copy-on-publish layout (no layout field) reads the plain objects', async () => {
      await store.put(job, 'model.safetensors', 'copied at publish');
      await store.stage(job, 'old', 'model.safetensors', 'stage never removed');
      await publish(job, { stage: 'old', names: ['model.safetensors'] });
      expect(text(await store.get(job, 'model.safetensors'))).toBe('copied at publish');
      expect((await store.list(job)).map((a) => a.name)).toEqual(['model.safetensors']);
    });

    test('concurrent writers of one artifact: a reader sees one whole version, never a mix', async () => {
      const versions = Array.from({ length: 12 }, (_, i) => String(i).repeat(64 * 1024));
      const reads: Promise<string | null>[] = [];
      await Promise.all(
        versions.map(async (v) => {
          await store.put(job, 'state.json', v);
          reads.push(store.get(job, 'state.json').then(text, () => null));
        }),
      );
      const last = text(await store.get(job, 'state.json'));
      for (const r of [...(await Promise.all(reads)), last]) expect(versions).toContain(r);
      expect((await store.list(job)).map((a) => a.name)).toEqual(['state.json']);
      expect(await c.raw.objects(job)).toBe(1);
    });

    test('leftovers of killed writers are hidden, and go when the job is tidied', async () => {
      await store.put(job, 'checkpoint.safetensors', 'ckpt');
      await c.raw.leaveKilledPut(job, 'checkpoint-metrics.json');
      await store.stage(job, 'killed', 'model.safetensors', new Uint8Array([7])); // never published nor discarded
      expect((await store.list(job)).map((a) => a.name)).toEqual(['checkpoint.safetensors']);
      expect(await store.exists(job, 'checkpoint-metrics.json')).toBe(false);
      await store.stage(job, 'chosen', 'model.safetensors', new Uint8Array([1]));
      await publish(job, { stage: 'chosen', names: ['model.safetensors'], layout: ATTEMPT_LAYOUT });
      await store.pruneStages(job, 'chosen');
      expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1]);
      expect(await c.raw.objects(job)).toBe(2); // the published object and the plain checkpoint
    });

    test("removing a job's set takes its artifacts, stages and leftovers, and only its", async () => {
      const other = randomUUID();
      await store.put(other, 'model.safetensors', 'other');
      await store.put(job, 'model.safetensors', 'm');
      await store.put(job, 'metrics.csv', 'a,b');
      await store.stage(job, 'pending', 'config.json', '{}');
      await store.stage(job, 'published', 'config.json', '{}');
      await c.raw.leaveKilledPut(job, 'state.json');
      expect(await jobIds(store)).toEqual(expect.arrayContaining([job, other]));
      await store.remove(job);
      expect(await store.list(job)).toEqual([]);
      expect(await c.raw.objects(job)).toBe(0);
      await publish(job, { stage: 'published', names: ['config.json'], layout: ATTEMPT_LAYOUT });
      expect(await store.list(job)).toEqual([]);
      expect(await jobIds(store)).not.toContain(job);
      expect(text(await store.get(other, 'model.safetensors'))).toBe('other');
    });

    test('jobs() lists a job with only a stage, with when it last changed', async () => {
      const before = Date.now();
      await store.stage(job, 'pending', 'config.json', '{}');
      let found: { jobId: string; modifiedAt: number } | undefined;
      for await (const j of store.jobs()) if (j.jobId === job) found = j;
      expect(found).toBeDefined();
      // File systems keep coarser times than Date.now(): allow a second either side.
      expect(found!.modifiedAt).toBeGreaterThanOrEqual(before - 1000);
      expect(found!.modifiedAt).toBeLessThanOrEqual(Date.now() + 1000);
    });
  });
}
