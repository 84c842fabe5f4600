/**
 * The worker's NestJS module (an application context: no HTTP). Wiring only; see each provider.
 */
import { Module, type DynamicModule } from '@nestjs/common';
import { WORKER_CONFIG, type WorkerConfig } from './config';
import { EngineClient } from './engine/engine-client';
import { HeartbeatService } from './heartbeat.service';
import { CheckpointStore } from './jobs/checkpoints';
import { QueueConsumer } from './jobs/consumer';
import { JobFencing } from './jobs/fencing';
import { JobEvents } from './jobs/job-events';
import { JOB_HANDLERS, type JobHandler } from './jobs/job-handler';
import { HANDLER_CLASSES } from './jobs/job-types';
import { ArtifactPublisher } from './jobs/publish';
import { SweepFinisher } from './jobs/sweep-finisher';
import { SweepGate } from './jobs/sweep-gate';
import { ARTIFACT_STORE, DATASET_STORE, RedisService, artifactStoreFactory, datasetStoreFactory } from './redis';
import { MetricsService } from './metrics.service';
import { RetentionService } from './retention.service';
import { SessionServer } from './sessions/session-server';

@Module({})
export class WorkerModule {
  /** The module for one validated configuration (`loadWorkerConfig()`, read once in main.ts). */
  static forConfig(config: WorkerConfig): DynamicModule {
    return {
      module: WorkerModule,
      providers: [
        { provide: WORKER_CONFIG, useValue: config },
        { provide: ARTIFACT_STORE, useFactory: artifactStoreFactory, inject: [WORKER_CONFIG, RedisService] },
        { provide: DATASET_STORE, useFactory: datasetStoreFactory, inject: [WORKER_CONFIG] },
        RedisService,
        EngineClient,
        JobEvents,
        JobFencing,
        CheckpointStore,
        ArtifactPublisher,
        RetentionService,
        SweepGate,
        SweepFinisher,
        SessionServer,
        ...HANDLER_CLASSES,
        {
          provide: JOB_HANDLERS,
          useFactory: (...handlers: JobHandler[]) => handlers,
          inject: HANDLER_CLASSES,
        },
        QueueConsumer,
        HeartbeatService,
        MetricsService,
      ],
    };
  }
}
