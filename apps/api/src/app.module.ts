import { Module, type DynamicModule } from '@nestjs/common';
import type { ApiConfig } from './config';
import { DatasetsController } from './datasets/datasets.controller';
import { DocsController } from './docs/docs.controller';
import { InfraModule } from './infra/infra.module';
import { EventFeed } from './jobs/event-feed';
import { JobRecords } from './jobs/job-records';
import { JobsController } from './jobs/jobs.controller';
import { JobsService } from './jobs/jobs.service';
import { SystemController } from './system.controller';

@Module({})
export class AppModule {
  static forRoot(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [InfraModule.forRoot(config)],
      controllers: [JobsController, DatasetsController, SystemController, DocsController],
      providers: [JobRecords, JobsService, EventFeed],
    };
  }
}
