/**
 * The worker's Redis connection and the contract objects built on it (keys, the per-job event
 * stream, the artifact store). One connection serves BullMQ's commands (each BullMQ Worker opens its
 * own blocking connection from it) and ours; `maxRetriesPerRequest: null` (BullMQ requires it) makes
 * commands wait through a reconnection instead of failing.
 */
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  RedisJobEventStream,
  RedisPublishedSets,
  openArtifactStore,
  openDatasetStore,
  redisKeys,
  type ArtifactStore,
  type DatasetStore,
  type JobEventStream,
  type RedisKeys,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from './config';

@Injectable()
export class RedisService implements OnApplicationShutdown {
  private readonly log = new Logger('Redis');
  readonly connection: Redis;
  readonly keys: RedisKeys;
  readonly events: JobEventStream;

  constructor(@Inject(WORKER_CONFIG) config: WorkerConfig) {
    this.keys = redisKeys(config.queuePrefix);
    this.connection = new Redis(config.redisUrl, {
      maxRetriesPerRequest: null,
      connectionName: `relu-lstm-worker:${config.workerId}`,
    });
    let lastError = '';
    this.connection.on('error', (err: Error) => {
      // ioredis reports every failed reconnection; say it once per distinct message.
      if (err.message !== lastError) this.log.warn(`redis: ${err.message}`);
      lastError = err.message;
    });
    this.connection.on('ready', () => {
      if (lastError) this.log.log('redis: connected again');
      lastError = '';
    });
    this.events = new RedisJobEventStream(this.connection, this.keys, config.eventStreamMaxLen);
  }

  /** Closed last, after the consumers and the heartbeat (their hooks run first: see WorkerRuntime). */
  async onApplicationShutdown(): Promise<void> {
    try {
      await this.connection.quit();
    } catch {
      this.connection.disconnect();
    }
  }
}

/** Injection token of the worker's `ArtifactStore`. */
export const ARTIFACT_STORE = Symbol('ARTIFACT_STORE');

/** The store reads resolve jobs' published sets through this worker's Redis connection. */
export function artifactStoreFactory(config: WorkerConfig, redis: RedisService): ArtifactStore {
  return openArtifactStore(config.artifactDir, { published: new RedisPublishedSets(redis.connection, redis.keys) });
}

/** Injection token of the worker's `DatasetStore` (the retention sweep removes unused datasets). */
export const DATASET_STORE = Symbol('DATASET_STORE');

export function datasetStoreFactory(config: WorkerConfig): DatasetStore {
  return openDatasetStore(config.datasetDir);
}
