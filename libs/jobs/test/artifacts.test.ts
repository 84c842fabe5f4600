import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import {
  DatasetNotFoundError,
  FileDatasetStore,
  isValidArtifactName,
  openArtifactStore,
  openDatasetStore,
  StoreLocationSchema,
  type DatasetRow,
} from '@relu-lstm/jobs';
import { FileArtifactStore } from '../src/file-artifact-store';
import { describeArtifactStoreContract } from './artifact-store-contract';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'artifacts-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every file and directory under `root`, hidden ones included. */
async function filesUnder(root: string): Promise<number> {
  try {
    return (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).length;
  } catch {
    return 0;
  }
}

describeArtifactStoreContract('file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'artifact-contract-'));
  return {
    store: openArtifactStore(root),
    raw: {
      // A SIGKILL between writing a put's temporary file and renaming it.
      leaveKilledPut: (jobId, name) => writeFile(join(root, jobId, `.${name}.0123456789ab.tmp`), 'half'),
      objects: (jobId) => filesUnder(join(root, jobId)),
    },
    close: () => rm(root, { recursive: true, force: true }),
  };
});

describe('FileArtifactStore', () => {
  test('keeps <dir>/<jobId>/<name> and no temporary files', async () => {
    const store = new FileArtifactStore(dir);
    const job = randomUUID();
    await store.put(job, 'state.json', '1');
    await store.put(job, 'state.json', '2');
    expect(await readdir(join(dir, job))).toEqual(['state.json']);
    expect(await readFile(join(dir, job, 'state.json'), 'utf8')).toBe('2');
  });

  test('artifact names are one safe path segment', () => {
    for (const bad of ['../x', '..', '.hidden', 'a/b', 'a\\b', '', 'a..b']) expect(isValidArtifactName(bad)).toBe(false);
    expect(isValidArtifactName('checkpoint-3.safetensors')).toBe(true);
  });
});

describe('store locations', () => {
  test('a path or a file: URL opens the same directory; another scheme is refused', async () => {
    const job = randomUUID();
    await openArtifactStore(pathToFileURL(dir).href).put(job, 'config.json', '{}');
    expect(await openArtifactStore(dir).exists(job, 'config.json')).toBe(true);
    expect(StoreLocationSchema.parse(pathToFileURL(dir).href)).toBe(dir);
    expect(StoreLocationSchema.parse('data/artifacts')).toBe(join(process.cwd(), 'data/artifacts'));
    const bad = StoreLocationSchema.safeParse('ftp://host/x');
    expect(bad.error?.issues[0].message).toBe('expected a directory path or a URL with scheme file:');
    expect(() => openDatasetStore('gopher://x')).toThrow(
      /dataset store: expected a directory path or a URL with scheme file:, got "gopher:\/\/x"/,
    );
  });
});

describe('FileDatasetStore', () => {
  test('put, get, exists, remove', async () => {
    const store = openDatasetStore(join(dir, 'datasets'));
    const id = randomUUID();
    const { bytes } = await store.put(id, { x: [[[1], [2]]], y: [[3]] });
    expect(bytes).toBe(Buffer.byteLength(JSON.stringify({ x: [[[1], [2]]], y: [[3]] })));
    expect(await store.get(id)).toEqual({ x: [[[1], [2]]], y: [[3]] });
    expect(await store.exists(id)).toBe(true);
    await store.remove(id);
    expect(await store.exists(id)).toBe(false);
    await expect(store.get(id)).rejects.toBeInstanceOf(DatasetNotFoundError);
  });

  test('rows from an async source are stored as the same arrays, lengths included', async () => {
    const store = new FileDatasetStore(join(dir, 'datasets'));
    const id = randomUUID();
    async function* rows(): AsyncIterable<DatasetRow> {
      for (let i = 0; i < 50; i++) yield { x: [[i], [i + 0.5]], y: [[i], [2 * i]], length: 1 + (i % 2) };
    }
    const expected = {
      x: Array.from({ length: 50 }, (_, i) => [[i], [i + 0.5]]),
      y: Array.from({ length: 50 }, (_, i) => [[i], [2 * i]]),
      lengths: Array.from({ length: 50 }, (_, i) => 1 + (i % 2)),
    };
    const { bytes } = await store.put(id, rows());
    expect(await store.get(id)).toEqual(expected);
    expect(bytes).toBe(Buffer.byteLength(JSON.stringify(expected)));
  });

  test('a failed put leaves no dataset and no temporary files', async () => {
    const root = join(dir, 'datasets-failed');
    const store = new FileDatasetStore(root);
    const id = randomUUID();
    async function* broken(): AsyncIterable<DatasetRow> {
      yield { x: [[1]], y: [1] };
      throw new Error('upload cut off');
    }
    await expect(store.put(id, broken())).rejects.toThrow(/upload cut off/);
    const mixed: DatasetRow[] = [
      { x: [[1]], y: [1], length: 1 },
      { x: [[2]], y: [2] },
    ];
    await expect(store.put(id, mixed)).rejects.toThrow(/length on every row or on none, row 1 differs/);
    expect(await store.exists(id)).toBe(false);
    expect(await readdir(root)).toEqual([]);
  });
});
