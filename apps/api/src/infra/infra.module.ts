/**
 * Shared instances, built once from the validated config: the Redis connection, key builders, the
 * payload schemas (with the configured limits), the event stream, the artifact and dataset stores,
 * and the BullMQ queues.
 */
import { BullModule } from '@nestjs/bullmq';
import { Global, Inject, Module, type DynamicModule, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  DEFAULT_STREAM_MAXLEN,
  QUEUE_NAMES,
  SWEEP_QUEUE,
  RedisJobEventStream,
  makeContract,
  RedisPublishedSets,
  openArtifactStore,
  openDatasetStore,
  redisKeys,
  type RedisKeys,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { JobQueues } from './job-queues';
import { closeRedis, connectRedis } from './redis';
import { ARTIFACT_STORE, CONFIG, CONTRACT, DATASET_STORE, EVENT_STREAM, KEYS, REDIS } from './tokens';

/**
 * Blocking connections the event stream keeps for reuse after a follow ends (`infer?wait=true`, SSE):
 * opening one per request cost more than a tiny job's whole wait (bench/README.md, "Runner").
 */
const IDLE_BLOCKING_CONNECTIONS = 32;

@Global()
@Module({})
export class InfraModule implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(EVENT_STREAM) private readonly events: RedisJobEventStream,
  ) {}

  static forRoot(config: ApiConfig): DynamicModule {
    const providers = [
      { provide: CONFIG, useValue: config },
      { provide: REDIS, useFactory: () => connectRedis(config.redisUrl, `${config.queuePrefix}:api`) },
      { provide: KEYS, useValue: redisKeys(config.queuePrefix) },
      { provide: CONTRACT, useValue: makeContract(config.limits) },
      {
        provide: EVENT_STREAM,
        inject: [REDIS, KEYS],
        useFactory: (redis: Redis, keys: RedisKeys) =>
          new RedisJobEventStream(redis, keys, DEFAULT_STREAM_MAXLEN, {
            idleBlockingConnections: IDLE_BLOCKING_CONNECTIONS,
          }),
      },
      {
        provide: ARTIFACT_STORE,
        inject: [REDIS, KEYS],
        useFactory: (redis: Redis, keys: RedisKeys) =>
          openArtifactStore(config.artifactDir, { published: new RedisPublishedSets(redis, keys) }),
      },
      { provide: DATASET_STORE, useValue: openDatasetStore(config.datasetDir) },
      JobQueues,
    ];
    return {
      module: InfraModule,
      imports: [
        BullModule.forRoot({
          prefix: config.queuePrefix,
          // A producer: fail fast while Redis is down instead of queueing commands.
          connection: {
            url: config.redisUrl,
            enableOfflineQueue: false,
            maxRetriesPerRequest: 1,
            connectionName: `${config.queuePrefix}:api-queues`,
          },
        }),
        BullModule.registerQueue(...[...QUEUE_NAMES, SWEEP_QUEUE].map((name) => ({ name }))),
        // Not forced to disconnect on shutdown: a disconnect from an unreachable Redis never returns.
        BullModule.registerFlowProducer({ name: SWEEP_QUEUE, forceDisconnectOnShutdown: false }),
      ],
      providers,
      exports: [...providers, BullModule],
    };
  }

  async onApplicationShutdown(): Promise<void> {
    this.events.close();
    await closeRedis(this.redis);
  }
}
