/** GET /metrics: the api's Prometheus metrics (api-metrics.ts); access `operator` (routes.ts). */
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import type { JobEventStream, RedisKeys } from '@relu-lstm/jobs';
import { JobQueues } from '../infra/job-queues';
import { EVENT_STREAM, KEYS, REDIS } from '../infra/tokens';
import { liveWorkers } from '../infra/workers';
import { ApiMetrics, QUEUE_DEPTH_STATES } from './api-metrics';

@Controller('metrics')
export class MetricsController {
  constructor(
    private readonly metrics: ApiMetrics,
    @Inject(REDIS) redis: Redis,
    @Inject(KEYS) keys: RedisKeys,
    @Inject(EVENT_STREAM) events: JobEventStream,
    queues: JobQueues,
  ) {
    metrics.attach({
      redis,
      keys,
      events,
      queueCounts: (q) => queues.get(q).getJobCounts(...QUEUE_DEPTH_STATES),
      liveWorkers: () => liveWorkers(redis, keys),
    });
  }

  @Get()
  async scrape(@Res() res: Response): Promise<void> {
    const body = await this.metrics.scrape();
    res.setHeader('Cache-Control', 'no-store');
    res.type(this.metrics.registry.contentType).send(body);
  }
}
