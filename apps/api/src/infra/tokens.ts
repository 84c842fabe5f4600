/** Injection tokens of the api's shared instances. */
export const CONFIG = Symbol('ApiConfig');
export const REDIS = Symbol('Redis');
export const KEYS = Symbol('RedisKeys');
export const CONTRACT = Symbol('JobContract');
export const EVENT_STREAM = Symbol('JobEventStream');
export const ARTIFACT_STORE = Symbol('ArtifactStore');
export const DATASET_STORE = Symbol('DatasetStore');
export const KEY_RING = Symbol('KeyRing');
