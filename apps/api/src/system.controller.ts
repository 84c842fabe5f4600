/**
 * GET /health (liveness: the process and the background Redis probe, redis-probe.ts), GET /ready
 * (readiness: also the artifact store and the queues' workers, readiness.ts) and GET /v1/workers
 * (live workers from their heartbeats).
 */
import {
  Controller,
  Get,
  Inject,
  Req,
  Res,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import type { ArtifactStore, Health, Readiness, RedisKeys, WorkerList } from '@relu-lstm/jobs';
import type { ApiConfig } from './config';
import { tenantOf } from './http/tenant';
import { ARTIFACT_STORE, CONFIG, KEYS, REDIS } from './infra/tokens';
import { queueCheck, storeCheck, type BackgroundCheck, type QueueReadiness, type StoreReadiness } from './readiness';
import { RedisProbe } from './redis-probe';
import { liveWorkers } from './infra/workers';
import { JobRecords } from './jobs/job-records';
import { ApiMetrics } from './metrics/api-metrics';

/** How long /ready waits for the store's probe and the heartbeats before calling them down. */
const READY_CHECK_TIMEOUT_MS = 2_000;

@Controller()
export class SystemController implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly probe: RedisProbe;
  private readonly store: BackgroundCheck<StoreReadiness>;
  private readonly queues: BackgroundCheck<QueueReadiness | null>;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONFIG) config: ApiConfig,
    @Inject(ARTIFACT_STORE) store: ArtifactStore,
    private readonly records: JobRecords,
    metrics: ApiMetrics,
  ) {
    this.probe = new RedisProbe(redis, {
      probeMs: config.healthProbeMs,
      staleMs: config.redisStaleMs,
      onPong: (ms) => metrics.redisPing.observe(ms / 1000),
    });
    const checks = { cacheMs: config.healthProbeMs, timeoutMs: READY_CHECK_TIMEOUT_MS };
    this.store = storeCheck(store, checks);
    this.queues = queueCheck(redis, keys, checks);
  }

  /** Starts the Redis probe and the first store and queue checks, so /ready never waits for them. */
  onApplicationBootstrap(): void {
    this.probe.start();
    void this.store.status();
    void this.queues.status();
  }

  onApplicationShutdown(): void {
    this.probe.stop();
  }

  /** Liveness, from the process: 200 while Redis is up by the background probe, 503 when it is down. */
  @Get('health')
  health(@Res({ passthrough: true }) res: Response): Health {
    const { up } = this.probe.status();
    res.setHeader('Cache-Control', 'no-store');
    if (!up) res.status(503);
    return up ? { status: 'ok', redis: 'up' } : { status: 'unavailable', redis: 'down' };
  }

  /**
   * Readiness: Redis (with how long it takes to answer: slow is not down), the artifact store (and
   * its free disk), and per queue whether a live worker serves it. 503 when Redis or the store is
   * down; a queue nobody serves is reported, not a failure (its jobs wait for a worker).
   */
  @Get('ready')
  async ready(@Res({ passthrough: true }) res: Response): Promise<Readiness> {
    const s = this.probe.status();
    const [store, queues] = await Promise.all([this.store.status(), s.up ? this.queues.status() : null]);
    const ok = s.up && store.status === 'up';
    res.setHeader('Cache-Control', 'no-store');
    if (!ok) res.status(503);
    return {
      status: ok ? 'ok' : 'unavailable',
      redis: s.up ? 'up' : 'down',
      redisLatencyMs: s.latencyMs,
      redisAnsweredAt: s.lastPongAt,
      store,
      queues,
    };
  }

  /**
   * Workers whose heartbeat has not expired, sorted by id. Workers are shared, jobs are not: the
   * job a worker runs is shown only to the tenant that owns it (null for the others).
   */
  @Get('v1/workers')
  async workers(@Req() req: Request): Promise<WorkerList> {
    const tenant = tenantOf(req);
    const items = await liveWorkers(this.redis, this.keys);
    const owned = await this.records.metas(
      items.map((w) => w.currentJobId ?? ''),
      tenant,
    );
    return { items: items.map((w, i) => (w.currentJobId && !owned[i] ? { ...w, currentJobId: null } : w)) };
  }
}
