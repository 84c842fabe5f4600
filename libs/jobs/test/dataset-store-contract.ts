/**
 * What every `DatasetStore` must do, as a suite any implementation runs against itself:
 * `describeDatasetStoreContract('s3', makeS3Store)`. `raw.objects()` counts what the store holds
 * beneath the interface (temporary files and parts included), to show a failed put left nothing.
 */
import { randomUUID } from 'node:crypto';
import { DatasetNotFoundError, type DatasetRow, type DatasetStore } from '@relu-lstm/jobs';

export interface ContractDatasetStore {
  store: DatasetStore;
  raw: { objects(): Promise<number> };
  close(): Promise<void>;
}

/** `n` rows of 2 steps, 1 input, per-step targets; lengths 1 or 2 when `withLengths`. */
function rows(n: number, withLengths: boolean): DatasetRow[] {
  return Array.from({ length: n }, (_, i) => ({
    x: [[i], [i + 0.5]],
    y: [[i], [2 * i]],
    ...(withLengths ? { length: 1 + (i % 2) } : {}),
  }));
}

async function* slowly(from: DatasetRow[]): AsyncIterable<DatasetRow> {
  for (const r of from) {
    await new Promise((resolve) => setImmediate(resolve));
    yield r;
  }
}

export function describeDatasetStoreContract(name: string, makeStore: () => Promise<ContractDatasetStore>): void {
  describe(`DatasetStore contract: ${name}`, () => {
    let c: ContractDatasetStore;
    beforeAll(async () => {
      c = await makeStore();
    });
    afterAll(() => c.close());

    test('whole arrays: put, get, exists, remove; the size is the stored bytes', async () => {
      const id = randomUUID();
      const data = { x: [[[1], [2]]], y: [[3]] };
      expect((await c.store.put(id, data)).bytes).toBe(Buffer.byteLength(JSON.stringify(data)));
      expect(await c.store.get(id)).toEqual(data);
      expect(await c.store.exists(id)).toBe(true);
      await c.store.remove(id);
      expect(await c.store.exists(id)).toBe(false);
    });

    test('rows from an async source read back as the same arrays, lengths included', async () => {
      const id = randomUUID();
      const given = rows(50, true);
      await c.store.put(id, slowly(given));
      expect(await c.store.get(id)).toEqual({
        x: given.map((r) => r.x),
        y: given.map((r) => r.y),
        lengths: given.map((r) => r.length),
      });
    });

    test('missing datasets: not found, false, ignored removes', async () => {
      const id = randomUUID();
      await expect(c.store.get(id)).rejects.toBeInstanceOf(DatasetNotFoundError);
      expect(await c.store.exists(id)).toBe(false);
      await c.store.remove(id);
      await expect(c.store.get('../x')).rejects.toThrow(/dataset id/);
    });

    test('a failed put (source error, mixed lengths) leaves nothing, not even a part', async () => {
      const id = randomUUID();
      const before = await c.raw.objects();
      async function* cutOff(): AsyncIterable<DatasetRow> {
        for await (const r of slowly(rows(3, false))) yield r;
        throw new Error('upload cut off');
      }
      await expect(c.store.put(id, cutOff())).rejects.toThrow(/upload cut off/);
      const mixed = [...rows(1, true), ...rows(1, false)];
      await expect(c.store.put(id, mixed)).rejects.toThrow(/length on every row or on none, row 1 differs/);
      expect(await c.store.exists(id)).toBe(false);
      expect(await c.raw.objects()).toBe(before);
    });

    test('concurrent puts of one id: a reader gets one whole set', async () => {
      const id = randomUUID();
      const sets = [rows(20, false), rows(30, true), rows(40, false)];
      await Promise.all(sets.map((s) => c.store.put(id, slowly(s))));
      const got = await c.store.get(id);
      const match = sets.find((s) => s.length === got.x.length);
      expect(match).toBeDefined();
      expect(got.y).toEqual(match!.map((r) => r.y));
    });
  });
}
