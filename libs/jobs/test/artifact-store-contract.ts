/**
 * What every `ArtifactStore` must do, as a suite any implementation runs against itself:
 * `describeArtifactStoreContract('s3', makeS3Store)`. Everything is checked through the interface,
 * except what only the store's own storage can show (a killed writer's leftovers), which the
 * maker provides as `raw`.
 */
import { randomUUID } from 'node:crypto';
import { ArtifactNotFoundError, FencedWriteError, type ArtifactStore } from '@relu-lstm/jobs';

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

export function describeArtifactStoreContract(name: string, makeStore: () => Promise<ContractStore>): void {
  describe(`ArtifactStore contract: ${name}`, () => {
    let c: ContractStore;
    let store: ArtifactStore;
    let job: string;
    beforeAll(async () => {
      c = await makeStore();
      store = c.store;
    });
    afterAll(() => c.close());
    beforeEach(() => {
      job = randomUUID();
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
      expect(await store.publishStaged(job, 'nostage', ['model.safetensors'])).toBe(0);
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

    test('stages per attempt are invisible; the chosen one is published once, the other discarded', async () => {
      const names = ['model.safetensors', 'config.json'];
      await store.stage(job, 'attempt1', 'model.safetensors', new Uint8Array([1, 2]));
      await store.stage(job, 'attempt1', 'config.json', '{"a":1}');
      await store.stage(job, 'attempt2', 'model.safetensors', new Uint8Array([9, 9]));
      await store.stage(job, 'attempt2', 'config.json', '{"a":2}');
      expect(await store.list(job)).toEqual([]);
      await expect(store.get(job, 'config.json')).rejects.toBeInstanceOf(ArtifactNotFoundError);
      expect(await store.publishStaged(job, 'attempt1', names)).toBe(2);
      expect(await store.publishStaged(job, 'attempt1', names)).toBe(0);
      await store.discardStaged(job, 'attempt2');
      expect(await store.publishStaged(job, 'attempt2', names)).toBe(0);
      expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1, 2]);
      expect(text(await store.get(job, 'config.json'))).toBe('{"a":1}');
      expect(await c.raw.objects(job)).toBe(2);
    });

    test('two publishers of the same stage at once: each file lands once, with the stage bytes', async () => {
      const names = Array.from({ length: 8 }, (_, i) => `part-${i}.bin`);
      for (const n of names) await store.stage(job, 'chosen', n, `bytes of ${n}`);
      const publish = () => store.publishStaged(job, 'chosen', names);
      const moved = await Promise.all([publish(), publish()]);
      // Without an atomic move (S3) both may copy a file; each copy holds the stage's bytes.
      expect(moved[0] + moved[1]).toBeGreaterThanOrEqual(names.length);
      expect(moved[0] + moved[1]).toBeLessThanOrEqual(2 * names.length);
      for (const n of names) expect(text(await store.get(job, n))).toBe(`bytes of ${n}`);
      expect(await c.raw.objects(job)).toBe(names.length);
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

    test('leftovers of killed writers are hidden, and go when the job publishes', async () => {
      await store.put(job, 'checkpoint.safetensors', 'ckpt');
      await c.raw.leaveKilledPut(job, 'checkpoint-metrics.json');
      await store.stage(job, 'killed', 'model.safetensors', new Uint8Array([7])); // never published nor discarded
      expect((await store.list(job)).map((a) => a.name)).toEqual(['checkpoint.safetensors']);
      expect(await store.exists(job, 'checkpoint-metrics.json')).toBe(false);
      await store.stage(job, 'chosen', 'model.safetensors', new Uint8Array([1]));
      expect(await store.publishStaged(job, 'chosen', ['model.safetensors'])).toBe(1);
      expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1]);
      expect(await c.raw.objects(job)).toBe(2);
      expect(await store.publishStaged(job, 'killed', ['model.safetensors'])).toBe(0);
    });

    test("removing a job's set takes its artifacts, stages and leftovers, and only its", async () => {
      const other = randomUUID();
      await store.put(other, 'model.safetensors', 'other');
      await store.put(job, 'model.safetensors', 'm');
      await store.put(job, 'metrics.csv', 'a,b');
      await store.stage(job, 'pending', 'config.json', '{}');
      await c.raw.leaveKilledPut(job, 'state.json');
      expect(await jobIds(store)).toEqual(expect.arrayContaining([job, other]));
      await store.remove(job);
      expect(await store.list(job)).toEqual([]);
      expect(await c.raw.objects(job)).toBe(0);
      expect(await store.publishStaged(job, 'pending', ['config.json'])).toBe(0);
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
