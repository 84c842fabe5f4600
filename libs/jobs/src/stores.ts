/**
 * The one way to open the artifact and dataset stores: from a location (`ARTIFACT_DIR`,
 * `DATASET_DIR`) whose scheme picks the implementation: a directory, given as a path or a `file:`
 * URL, or an S3 bucket, `s3://bucket/prefix` (connection settings: `S3_ENV`, read when opened).
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArtifactStore } from './artifacts';
import { FileDatasetStore, type DatasetStore } from './datasets';
import { FileArtifactStore } from './file-artifact-store';
import type { PublishedSets } from './published-sets';
import { S3ArtifactStore, S3DatasetStore, normalizeS3Location, s3ClientFromEnv } from './s3-store';

/** What an S3 store throws when the bucket, the credentials or the server fail (not a missing object). */
export { ObjectStoreError } from './s3-store';

export type StoreScheme = 'file' | 's3';

/** The environment a store's connection settings are read from (`S3_ENV`). */
export type StoreEnv = Readonly<Record<string, string | undefined>>;

interface StoreOpeners {
  /** The location written back in a normal form (a `file:` location: its absolute path). */
  normalize(location: string): string;
  artifacts(location: string, o: { env: StoreEnv; published: PublishedSets }): ArtifactStore;
  datasets(location: string, env: StoreEnv): DatasetStore;
}

const STORE_OPENERS = {
  file: {
    normalize: (location) => (location.startsWith('file:') ? fileURLToPath(location) : resolve(location)),
    artifacts: (location, o) => new FileArtifactStore(location, o.published),
    datasets: (location) => new FileDatasetStore(location),
  },
  s3: {
    normalize: normalizeS3Location,
    artifacts: (location, o) => new S3ArtifactStore(s3ClientFromEnv(o.env), location, o.published),
    datasets: (location, env) => new S3DatasetStore(s3ClientFromEnv(env), location),
  },
} satisfies Record<StoreScheme, StoreOpeners>;

/** A scheme of two letters or more (so a Windows drive letter stays a path). */
const URL_SCHEME = /^([a-z][a-z0-9+.-]+):/i;

const EXPECTED = `a directory path or a URL with scheme ${Object.keys(STORE_OPENERS)
  .map((s) => `${s}:`)
  .join(', ')}`;

/** The scheme of a location (a location without one is a path); null for a scheme with no store. */
function schemeOf(location: string): StoreScheme | null {
  const m = URL_SCHEME.exec(location);
  if (!m) return 'file';
  const scheme = m[1].toLowerCase();
  return scheme in STORE_OPENERS ? (scheme as StoreScheme) : null;
}

/**
 * A store location of the configuration (`ARTIFACT_DIR`, `DATASET_DIR`) in its normal form, so every
 * process opens the same store from it; an unknown scheme throws `expected …` for the env parser.
 */
export function storeLocation(location: string): string {
  const scheme = schemeOf(location);
  if (scheme === null) throw new Error(`expected ${EXPECTED}`);
  return STORE_OPENERS[scheme].normalize(location);
}

function opener(what: string, location: string): { scheme: StoreOpeners; location: string } {
  const scheme = schemeOf(location);
  if (scheme === null) throw new Error(`${what}: expected ${EXPECTED}, got ${JSON.stringify(location)}`);
  return { scheme: STORE_OPENERS[scheme], location: STORE_OPENERS[scheme].normalize(location) };
}

export interface ArtifactStoreOptions {
  /**
   * Where reads learn a job's published set: `RedisPublishedSets` in every process that reads
   * jobs' artifacts; `NO_PUBLISHED_SETS` only where no job is ever published.
   */
  published: PublishedSets;
  /** Connection settings (`S3_ENV`); default: the process's environment. */
  env?: StoreEnv;
}

/** The artifact store at `location` (a path, or a URL of a scheme in `STORE_OPENERS`). */
export function openArtifactStore(location: string, options: ArtifactStoreOptions): ArtifactStore {
  const o = opener('artifact store', location);
  return o.scheme.artifacts(o.location, { env: options.env ?? process.env, published: options.published });
}

/** The dataset store at `location` (a path, or a URL of a scheme in `STORE_OPENERS`). */
export function openDatasetStore(location: string, env: StoreEnv = process.env): DatasetStore {
  const o = opener('dataset store', location);
  return o.scheme.datasets(o.location, env);
}
