/**
 * Counts finished jobs for the metrics: one BullMQ `QueueEvents` reader per queue (a blocking Redis
 * connection each), and for each `completed` / `failed` event the job's type and run times from its
 * hash (never its payload). BullMQ emits `failed` only for a final failure, not for an attempt that
 * will be retried.
 */
import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { JOB_TYPES, QUEUE_NAMES, type JobType, type QueueName } from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { closeWithin } from '../infra/close';
import { JobQueues } from '../infra/job-queues';
import { CONFIG, REDIS } from '../infra/tokens';
import { ApiMetrics } from './api-metrics';

@Injectable()
export class JobOutcomes implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger('metrics');
  private readonly readers: QueueEvents[] = [];

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    private readonly queues: JobQueues,
    private readonly metrics: ApiMetrics,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  onApplicationBootstrap(): void {
    let lastWarned = 0;
    for (const queue of QUEUE_NAMES) {
      const reader = new QueueEvents(queue, {
        prefix: this.config.queuePrefix,
        connection: { url: this.config.redisUrl, connectionName: `${this.config.queuePrefix}:api-metrics` },
      });
      reader.on('error', (e: Error) => {
        if (Date.now() - lastWarned > 10_000) this.log.warn(`queue events ${queue}: ${e.message}`);
        lastWarned = Date.now();
      });
      reader.on('completed', ({ jobId }) => void this.record(queue, jobId, null));
      reader.on('failed', ({ jobId, failedReason }) => void this.record(queue, jobId, failedReason ?? ''));
      this.readers.push(reader);
    }
  }

  private async record(queue: QueueName, jobId: string, failedReason: string | null): Promise<void> {
    try {
      const key = this.queues.get(queue).backend.toKey(jobId);
      const [name, processedOn, finishedOn] = await this.redis.hmget(key, 'name', 'processedOn', 'finishedOn');
      if (!name || !(JOB_TYPES as readonly string[]).includes(name)) return;
      const int = (v: string | null) => (v ? parseInt(v, 10) : null);
      this.metrics.jobFinished({
        type: name as JobType,
        failedReason,
        processedOn: int(processedOn),
        finishedOn: int(finishedOn),
      });
    } catch (e) {
      this.log.warn(`job ${jobId} finished but could not be counted: ${(e as Error).message}`);
    }
  }

  /** A reader whose Redis is unreachable never finishes closing (nor disconnecting): each gets a second. */
  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.readers.map((r) => closeWithin(r)));
  }
}
