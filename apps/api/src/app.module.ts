import { Module, type DynamicModule } from '@nestjs/common';
import { AdminController } from './admin.controller';
import { DashboardController } from './dashboard.controller';
import type { ApiConfig } from './config';
import { DatasetCatalog } from './datasets/catalog';
import { DatasetsController } from './datasets/datasets.controller';
import { DocsController } from './docs/docs.controller';
import { KeyRing } from './http/api-keys';
import { InfraModule } from './infra/infra.module';
import { KEY_RING } from './infra/tokens';
import { EventFeed } from './jobs/event-feed';
import { JobRecords } from './jobs/job-records';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { JobQuota } from './jobs/quota';
import { ModelCatalog } from './models/catalog';
import { ModelsController } from './models/models.controller';
import { SessionsController } from './sessions/sessions.controller';
import { SessionsService } from './sessions/sessions.service';
import { SweepsController } from './sweeps/sweeps.controller';
import { SweepsService } from './sweeps/sweeps.service';
import { ApiMetrics } from './metrics/api-metrics';
import { JobOutcomes } from './metrics/job-outcomes';
import { MetricsController } from './metrics/metrics.controller';
import { SystemController } from './system.controller';

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [InfraModule.forRoot(config)],
      controllers: [
        JobsController,
        SweepsController,
        SessionsController,
        DatasetsController,
        ModelsController,
        SystemController,
        DocsController,
        AdminController,
        DashboardController,
        MetricsController,
      ],
      providers: [
        JobRecords,
        JobsService,
        SweepsService,
        SessionsService,
        EventFeed,
        JobQuota,
        DatasetCatalog,
        ModelCatalog,
        { provide: ApiMetrics, useValue: new ApiMetrics() },
        JobOutcomes,
        { provide: KEY_RING, useValue: new KeyRing(config.apiKeys, config.adminKeyHash) },
      ],
    };
  }
}
