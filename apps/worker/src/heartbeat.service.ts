/**
 * The worker's heartbeat: every HEARTBEAT_INTERVAL_MS, its `WorkerHeartbeat` under `keys.worker(id)`
 * with a TTL of HEARTBEAT_TTL_MS, and its id in `keys.workers()` scored by when that entry expires
 * (so a reader can drop ids whose worker died without saying goodbye). Removed on clean shutdown.
 */
import * as os from 'node:os';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { WorkerHeartbeatSchema, type WorkerHeartbeat } from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from './config';
import { QueueConsumer } from './jobs/consumer';
import { RedisService } from './redis';

const VERSION: string = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- outside rootDir: read at run time, not compiled in
    return (require('../package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

@Injectable()
export class HeartbeatService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Heartbeat');
  private timer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  private beating: Promise<void> = Promise.resolve();

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: RedisService,
    private readonly consumer: QueueConsumer,
  ) {}

  /** Runs after the consumer's bootstrap (it is injected into this service, so it starts first). */
  async onApplicationBootstrap(): Promise<void> {
    await this.beat();
    this.timer = setInterval(() => {
      this.beating = this.beat().catch((e) => this.log.warn(`heartbeat: ${(e as Error).message}`));
    }, this.config.heartbeat.intervalMs);
  }

  current(): WorkerHeartbeat {
    const b = this.consumer.backend;
    return WorkerHeartbeatSchema.parse({
      id: this.config.workerId,
      backend: b?.backend ?? 'unknown',
      gpu: b?.gpu ?? false,
      device: b?.device ?? 'unknown',
      host: os.hostname(),
      pid: process.pid,
      queues: [...this.consumer.queues],
      currentJobId: this.consumer.currentJobId,
      startedAt: this.startedAt,
      at: Date.now(),
      version: VERSION,
    });
  }

  private async beat(): Promise<void> {
    const hb = this.current();
    const { connection, keys } = this.redis;
    await connection
      .multi()
      .set(keys.worker(hb.id), JSON.stringify(hb), 'PX', this.config.heartbeat.ttlMs)
      .zadd(keys.workers(), hb.at + this.config.heartbeat.ttlMs, hb.id)
      .zremrangebyscore(keys.workers(), '-inf', hb.at - 1)
      .exec();
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.beating;
    const { connection, keys } = this.redis;
    try {
      await connection.multi().del(keys.worker(this.config.workerId)).zrem(keys.workers(), this.config.workerId).exec();
    } catch (e) {
      this.log.warn(`could not remove the heartbeat: ${(e as Error).message}`);
    }
  }
}
