/**
 * Building `SequenceModel`s from payloads and from the `model.safetensors` of earlier jobs, and a
 * small LRU of loaded models for infer jobs. Engine side only (loads TensorFlow.js).
 */
import { SequenceModel, safetensorsToStateDict, type SequenceModelOptions } from '@relu-lstm/lstm';
import { sequenceModelOptions as flatToSequenceModel } from '@relu-lstm/lstm/config';
import {
  ARTIFACTS,
  ArtifactNotFoundError,
  MODEL_METADATA_KEY,
  ModelArtifactConfigSchema,
  architectureMismatches,
  type ArtifactStore,
  type ModelArtifactConfig,
  type ModelSource,
  type ModelSpec,
} from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';
import { PayloadError } from './errors';

/** The library's options for a payload's `model` (data is batch-first everywhere in the runner). */
export function sequenceModelOptions(m: ModelSpec, seed: number): SequenceModelOptions {
  return flatToSequenceModel(m, { batchFirst: true, seed });
}

export interface StoredModel {
  config: ModelArtifactConfig;
  /** Parameters by name (PyTorch names plus head.weight, head.bias); the caller disposes them. */
  stateDict: Record<string, tf.Tensor>;
}

/** A `not_found` error naming the payload field and the model whose files are gone. */
export function modelGone(source: ModelSource): Error & { code: 'not_found' } {
  const e = new Error(
    `${source.field}: ${source.label} has no ${ARTIFACTS.model} (gone with its job's retention, or the version was deleted)`,
  ) as Error & { code: 'not_found' };
  e.code = 'not_found';
  return e;
}

/** Reads and decodes the `model.safetensors` of `source`; throws `not_found` or `PayloadError`. */
export async function readStoredModel(artifacts: ArtifactStore, source: ModelSource): Promise<StoredModel> {
  const { field, label } = source;
  const bytes = await artifacts.get(source.storeId, ARTIFACTS.model).catch((e: unknown) => {
    throw e instanceof ArtifactNotFoundError ? modelGone(source) : e;
  });
  const { stateDict, metadata } = safetensorsToStateDict(ownBytes(bytes));
  try {
    const raw = metadata[MODEL_METADATA_KEY];
    if (raw === undefined)
      throw new PayloadError(`${field}: ${ARTIFACTS.model} of ${label} has no "${MODEL_METADATA_KEY}" metadata`, field);
    const parsed = ModelArtifactConfigSchema.safeParse(JSON.parse(raw));
    if (!parsed.success)
      throw new PayloadError(`${field}: ${ARTIFACTS.model} of ${label} has an unreadable config`, field);
    return { config: parsed.data, stateDict };
  } catch (e) {
    tf.dispose(Object.values(stateDict));
    throw e;
  }
}

/**
 * A copy of `buf` that owns its whole ArrayBuffer. Node's `readFile` may return a view into a
 * shared pool, and the library's safetensors reader takes tensor data from `.buffer` of a
 * `slice()`, which for a Buffer is a view, not a copy.
 */
export function ownBytes(buf: Uint8Array): Uint8Array {
  return new Uint8Array(buf);
}

/** Throws `PayloadError` naming the first architecture field where `want` and the stored model differ. */
export function checkSameArchitecture(want: ModelSpec, stored: ModelArtifactConfig, field: string): void {
  const k = architectureMismatches(want, stored.model)[0];
  if (k !== undefined) {
    throw new PayloadError(
      `${field}: the model of job ${stored.jobId} has ${k} ${JSON.stringify(stored.model[k])}, the payload ${JSON.stringify(want[k])}`,
      `model.${k}`,
    );
  }
}

/** A model rebuilt from a stored artifact. */
export function modelFromStored(stored: StoredModel): SequenceModel {
  const model = new SequenceModel(stored.config.sequenceModel);
  try {
    model.loadStateDict(stored.stateDict);
    return model;
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/** Bytes of a model's weights (float32). */
export function modelBytes(model: SequenceModel): number {
  let n = 0;
  for (const v of model.parameters().values()) n += v.size;
  return n * 4;
}

/**
 * The model `source` names: from `cache` under `key`, else read from the store and cached. `owned`:
 * the cache did not take it (none, or too big), so the caller disposes it after use.
 */
export async function loadModel(o: {
  cache: ModelCache;
  artifacts: ArtifactStore;
  source: ModelSource;
  key: string;
}): Promise<{ model: SequenceModel; owned: boolean }> {
  const cached = o.cache.get(o.key);
  if (cached) return { model: cached, owned: false };
  const stored = await readStoredModel(o.artifacts, o.source);
  let model: SequenceModel;
  try {
    model = modelFromStored(stored);
  } finally {
    tf.dispose(Object.values(stored.stateDict));
  }
  return { model, owned: !o.cache.put(o.key, model) };
}

/**
 * Least-recently-used cache of loaded models, keyed by job id plus the file's size and mtime (a
 * rewritten file is a new entry), bounded by a count and by the bytes of their weights (`maxBytes`,
 * 0: no byte bound). Evicted models are disposed.
 */
export class ModelCache {
  private readonly entries = new Map<string, { model: SequenceModel; bytes: number }>();
  private bytes = 0;

  constructor(
    private readonly capacity: number,
    private readonly maxBytes = 0,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string): SequenceModel | undefined {
    const e = this.entries.get(key);
    if (e !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, e);
    }
    return e?.model;
  }

  /** Adds a model; returns false (and the caller keeps ownership) when the cache holds none, or not one this big. */
  put(key: string, model: SequenceModel): boolean {
    const bytes = modelBytes(model);
    if (this.capacity <= 0 || (this.maxBytes > 0 && bytes > this.maxBytes)) return false;
    const prefix = key.split('@')[0] + '@';
    for (const k of [...this.entries.keys()]) if (k.startsWith(prefix) && k !== key) this.evict(k);
    this.entries.set(key, { model, bytes });
    this.bytes += bytes;
    while (this.entries.size > this.capacity || (this.maxBytes > 0 && this.bytes > this.maxBytes)) {
      this.evict(this.entries.keys().next().value as string);
    }
    return true;
  }

  private evict(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.bytes -= e.bytes;
    e.model.dispose();
  }

  clear(): void {
    for (const e of this.entries.values()) e.model.dispose();
    this.entries.clear();
    this.bytes = 0;
  }
}
