/**
 * The one way to open the artifact and dataset stores: from a location (`ARTIFACT_DIR`,
 * `DATASET_DIR`) whose scheme picks the implementation. Today a directory, given as a path or a
 * `file:` URL; another scheme (`s3://bucket/prefix`) is one entry in `STORE_OPENERS`.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ArtifactStore } from './artifacts';
import { FileDatasetStore, type DatasetStore } from './datasets';
import { FileArtifactStore } from './file-artifact-store';

export type StoreScheme = 'file';

interface StoreOpeners {
  /** The location written back in a normal form (a `file:` location: its absolute path). */
  normalize(location: string): string;
  artifacts(location: string): ArtifactStore;
  datasets(location: string): DatasetStore;
}

const STORE_OPENERS = {
  file: {
    normalize: (location) => (location.startsWith('file:') ? fileURLToPath(location) : resolve(location)),
    artifacts: (location) => new FileArtifactStore(location),
    datasets: (location) => new FileDatasetStore(location),
  },
} satisfies Record<StoreScheme, StoreOpeners>;

/** A scheme of two letters or more (so a Windows drive letter stays a path). */
const URL_SCHEME = /^([a-z][a-z0-9+.-]+):/i;

/** The scheme of a location; a location without one is a path. */
function schemeOf(variable: string, location: string): StoreScheme {
  const m = URL_SCHEME.exec(location);
  if (!m) return 'file';
  const scheme = m[1].toLowerCase();
  if (scheme in STORE_OPENERS) return scheme as StoreScheme;
  const known = Object.keys(STORE_OPENERS).map((s) => `${s}:`);
  throw new Error(`${variable}: expected a directory path or a URL with scheme ${known.join(', ')}, got ${JSON.stringify(location)}`);
}

/**
 * Checks a store location from the configuration and writes it in its normal form, so every
 * process opens the same store from it: throws an error naming `variable` for an unknown scheme.
 */
export function storeLocation(variable: string, location: string): string {
  return STORE_OPENERS[schemeOf(variable, location)].normalize(location);
}

/** The artifact store at `location` (see `storeLocation`). */
export function openArtifactStore(location: string): ArtifactStore {
  const scheme = schemeOf('artifact store', location);
  return STORE_OPENERS[scheme].artifacts(STORE_OPENERS[scheme].normalize(location));
}

/** The dataset store at `location` (see `storeLocation`). */
export function openDatasetStore(location: string): DatasetStore {
  const scheme = schemeOf('dataset store', location);
  return STORE_OPENERS[scheme].datasets(STORE_OPENERS[scheme].normalize(location));
}
