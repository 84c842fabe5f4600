import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ArtifactNotFoundError, FencedWriteError, FileArtifactStore, FileDatasetStore, DatasetNotFoundError, isValidArtifactName } from '@relu-lstm/jobs';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'artifacts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('FileArtifactStore', () => {
  test('put, get, list, exists, open, remove', async () => {
    const store = new FileArtifactStore(dir);
    const job = randomUUID();
    expect(await store.list(job)).toEqual([]);
    const info = await store.put(job, 'state.json', '{"hN":[]}');
    expect(info).toMatchObject({ name: 'state.json', size: 9 });
    await store.put(job, 'model.safetensors', new Uint8Array([1, 2, 3]));
    await store.put(job, 'state.json', '{"hN":[[1]]}'); // replaced atomically
    expect((await store.get(job, 'state.json')).toString()).toBe('{"hN":[[1]]}');
    expect((await store.list(job)).map((a) => [a.name, a.size])).toEqual([['model.safetensors', 3], ['state.json', 12]]);
    expect(await readdir(join(dir, job))).toHaveLength(2); // no temporary files left
    expect(await store.exists(job, 'model.safetensors')).toBe(true);
    const { info: oi, stream } = await store.open(job, 'model.safetensors');
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    expect(oi.size).toBe(3);
    expect([...Buffer.concat(chunks)]).toEqual([1, 2, 3]);
    await store.remove(job, 'model.safetensors');
    expect(await store.exists(job, 'model.safetensors')).toBe(false);
    await expect(store.get(job, 'model.safetensors')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    await expect(store.open(job, 'nope.bin')).rejects.toBeInstanceOf(ArtifactNotFoundError);
    await store.remove(job);
    expect(await store.list(job)).toEqual([]);
  });

  test('a fenced put writes only while its fence says yes, and leaves nothing behind when it says no', async () => {
    const store = new FileArtifactStore(dir);
    const job = randomUUID();
    let asked = 0;
    await store.put(job, 'checkpoint.safetensors', 'first', { fence: async () => (asked++, true) });
    expect(asked).toBe(1);
    await expect(store.put(job, 'checkpoint.safetensors', 'stale', { fence: async () => false })).rejects.toBeInstanceOf(FencedWriteError);
    expect((await store.get(job, 'checkpoint.safetensors')).toString()).toBe('first');
    expect(await readdir(join(dir, job))).toEqual(['checkpoint.safetensors']);
  });

  test('a staged set is invisible until published; publishing it twice (two publishers) moves each file once', async () => {
    const store = new FileArtifactStore(dir);
    const job = randomUUID();
    await store.stage(job, 'aaa', 'model.safetensors', new Uint8Array([1, 2]));
    await store.stage(job, 'aaa', 'config.json', '{"a":1}');
    await store.stage(job, 'bbb', 'model.safetensors', new Uint8Array([9, 9]));
    expect(await store.list(job)).toEqual([]); // stages are hidden directories
    expect(await store.publishStaged(job, 'aaa', ['model.safetensors', 'config.json'])).toBe(2);
    expect(await store.publishStaged(job, 'aaa', ['model.safetensors', 'config.json'])).toBe(0);
    await store.discardStaged(job, 'bbb');
    expect([...(await store.get(job, 'model.safetensors'))]).toEqual([1, 2]);
    expect((await readdir(join(dir, job))).sort()).toEqual(['config.json', 'model.safetensors']);
    await expect(store.stage(job, '../x', 'a.json', '1')).rejects.toThrow(/stage id/);
  });

  test('publishing removes what killed writers left: a put\'s temporary and another attempt\'s stage', async () => {
    const store = new FileArtifactStore(dir);
    const job = randomUUID();
    await store.put(job, 'checkpoint.safetensors', 'ckpt');
    await writeFile(join(dir, job, '.checkpoint-metrics.json.0123456789ab.tmp'), 'half'); // a SIGKILL mid-put
    await store.stage(job, 'killed', 'model.safetensors', new Uint8Array([7])); // a SIGKILL mid-stage
    await store.stage(job, 'aaa', 'model.safetensors', new Uint8Array([1]));
    expect(await store.publishStaged(job, 'aaa', ['model.safetensors'])).toBe(1);
    expect((await readdir(join(dir, job))).sort()).toEqual(['checkpoint.safetensors', 'model.safetensors']);
  });

  test('names and ids cannot leave the directory', async () => {
    const store = new FileArtifactStore(dir);
    for (const bad of ['../x', '..', '.hidden', 'a/b', 'a\\b', '', 'a..b']) expect(isValidArtifactName(bad)).toBe(false);
    expect(isValidArtifactName('checkpoint-3.safetensors')).toBe(true);
    await expect(store.put('..', 'x.json', '1')).rejects.toThrow(/job id/);
    await expect(store.get(randomUUID(), '../../etc/passwd')).rejects.toThrow(/artifact name/);
  });
});

describe('FileDatasetStore', () => {
  test('put, get, exists, remove', async () => {
    const store = new FileDatasetStore(join(dir, 'datasets'));
    const id = randomUUID();
    const { bytes } = await store.put(id, { x: [[[1], [2]]], y: [[3]] });
    expect(bytes).toBeGreaterThan(0);
    expect(await store.get(id)).toEqual({ x: [[[1], [2]]], y: [[3]] });
    expect(await store.exists(id)).toBe(true);
    await store.remove(id);
    await expect(store.get(id)).rejects.toBeInstanceOf(DatasetNotFoundError);
  });
});
