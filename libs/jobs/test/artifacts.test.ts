import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomUUID } from 'node:crypto';
import {
  FileDatasetStore,
  isValidArtifactName,
  NO_PUBLISHED_SETS,
  openArtifactStore,
  openDatasetStore,
  storeLocation,
} from '@relu-lstm/jobs';
import { FileArtifactStore } from '../src/file-artifact-store';
import { describeArtifactStoreContract } from './artifact-store-contract';
import { describeDatasetStoreContract } from './dataset-store-contract';

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

describeArtifactStoreContract('file', async (published) => {
  const root = await mkdtemp(join(tmpdir(), 'artifact-contract-'));
  return {
    store: openArtifactStore(root, { published }),
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
    const store = new FileArtifactStore(dir, NO_PUBLISHED_SETS);
    const job = randomUUID();
    await store.put(job, 'state.json', '1');
    await store.put(job, 'state.json', '2');
    expect(await readdir(join(dir, job))).toEqual(['state.json']);
    expect(await readFile(join(dir, job, 'state.json'), 'utf8')).toBe('2');
  });

  test('artifact names are one safe path segment', () => {
    for (const bad of ['../x', '..', '.hidden', 'a/b', 'a\\b', '', 'a..b']) {
      expect(isValidArtifactName(bad)).toBe(false);
    }
    expect(isValidArtifactName('checkpoint-3.safetensors')).toBe(true);
  });
});

describe('store locations', () => {
  test('a path or a file: URL opens the same directory; another scheme is refused', async () => {
    const job = randomUUID();
    await openArtifactStore(pathToFileURL(dir).href, { published: NO_PUBLISHED_SETS }).put(job, 'config.json', '{}');
    expect(await openArtifactStore(dir, { published: NO_PUBLISHED_SETS }).exists(job, 'config.json')).toBe(true);
    expect(storeLocation(pathToFileURL(dir).href)).toBe(dir);
    expect(storeLocation('data/artifacts')).toBe(join(process.cwd(), 'data/artifacts'));
    expect(() => storeLocation('ftp://host/x')).toThrow(/^expected a directory path or a URL with scheme file:, s3:$/);
    expect(() => openDatasetStore('gopher://x')).toThrow(
      /dataset store: expected a directory path or a URL with scheme file:, s3:, got "gopher:\/\/x"/,
    );
  });
});

describeDatasetStoreContract('file', async () => {
  const root = await mkdtemp(join(tmpdir(), 'dataset-contract-'));
  return {
    store: openDatasetStore(root),
    raw: { objects: () => filesUnder(root) },
    close: () => rm(root, { recursive: true, force: true }),
  };
});

describe('FileDatasetStore', () => {
  test('keeps <dir>/<id>.json', async () => {
    const root = join(dir, 'datasets');
    const id = randomUUID();
    const data = { x: [[[1]]], y: [[2]], lengths: [1] };
    await new FileDatasetStore(root).put(id, data);
    expect(JSON.parse(await readFile(join(root, `${id}.json`), 'utf8'))).toEqual(data);
  });
});
