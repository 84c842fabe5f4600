/**
 * Retention of the jobs' own records (see `retention.ts` of @relu-lstm/jobs):
 *   - `finished(job, outcome)`: the consumer calls it once BullMQ has recorded a final outcome; the
 *     job's per-job keys (`jobRecordKeys`: meta, event stream, cancel flag, checkpoint pointer,
 *     published-set record) get the keep-age of that outcome,
 *     read from the job's own `removeOnComplete` / `removeOnFail` (so they follow the policy the
 *     producer chose);
 *   - every RETENTION_SWEEP_MS, the worker that takes the lock (`<p>:retention:lock`, PX = the
 *     period: one sweep per period across all workers) removes what is left of expired jobs and the
 *     records of jobs BullMQ trimmed by count, their artifacts included.
 */
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Queue, type Job } from 'bullmq';
import {
  expireJobRecords,
  keepAgeSec,
  sweepRetention,
  tryLock,
  type ArtifactStore,
  type DatasetStore,
  type KeepOption,
  type QueueName,
  type RetentionSweepReport,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from './config';
import { ARTIFACT_STORE, DATASET_STORE, RedisService } from './redis';

@Injectable()
export class RetentionService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Retention');
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<unknown> = Promise.resolve();
  private readonly queues = new Map<QueueName, Queue>();

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    @Inject(DATASET_STORE) private readonly datasets: DatasetStore,
    private readonly redis: RedisService,
  ) {}

  /** Sets the finished job's records to expire with its outcome's keep-age (none: kept, count-trimmed). */
  async finished(job: Pick<Job, 'id' | 'opts'>, outcome: 'completed' | 'failed'): Promise<void> {
    if (!job.id) return;
    const age = keepAgeSec((outcome === 'completed' ? job.opts.removeOnComplete : job.opts.removeOnFail) as KeepOption);
    if (age === null) return;
    await expireJobRecords(this.redis.connection, this.redis.keys, job.id, age);
  }

  onApplicationBootstrap(): void {
    const period = this.config.retentionSweepMs;
    if (period <= 0) return;
    let busy = false;
    this.timer = setInterval(() => {
      // A sweep longer than the period (its lock has lapsed by then) is not joined by a second one
      // of this worker, and shutdown waits for the one that runs.
      if (busy) return;
      busy = true;
      this.sweeping = this.sweepIfLeader()
        .catch((e) => this.log.warn(`retention sweep: ${(e as Error).message}`))
        .finally(() => (busy = false));
    }, period);
    this.timer.unref();
  }

  /** One sweep when this worker gets the lock; null when another worker holds it. */
  async sweepIfLeader(): Promise<RetentionSweepReport | null> {
    const { connection, keys } = this.redis;
    if (!(await tryLock(connection, keys.retentionLock(), this.config.workerId, this.config.retentionSweepMs)))
      return null;
    const report = await sweepRetention({
      redis: connection,
      keys,
      removeQueueJob: (queue, id) => this.removeQueueJob(queue, id),
      artifacts: this.artifacts,
      orphanGraceMs: this.config.retentionSweepMs,
      datasets: { store: this.datasets, keepUnusedMs: this.config.datasetKeepUnusedSec * 1000 },
    });
    const removed =
      report.expired +
      report.trimmed +
      report.strayKeys +
      report.orphanArtifacts +
      report.unusedDatasets +
      report.filterEntries;
    if (removed > 0) this.log.log(`retention sweep: ${JSON.stringify(report)}`);
    return report;
  }

  private async removeQueueJob(name: QueueName, id: string): Promise<void> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis.connection, prefix: this.config.queuePrefix });
      q.on('error', (e: Error) => this.log.warn(`queue ${name}: ${e.message}`));
      this.queues.set(name, q);
    }
    // A job locked by a worker cannot be removed; it is not finished either, so nothing is lost.
    await q.remove(id).catch((e) => this.log.warn(`could not remove job ${id} from ${name}: ${(e as Error).message}`));
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping;
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
  }
}
