/**
 * GET /health and GET /ready (from the process and the background Redis probe, redis-probe.ts) and
 * GET /v1/workers (live workers from their heartbeats).
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
import type { Health, Readiness, RedisKeys, WorkerList } from '@relu-lstm/jobs';
import type { ApiConfig } from './config';
import { tenantOf } from './http/tenant';
import { CONFIG, KEYS, REDIS } from './infra/tokens';
import { RedisProbe } from './redis-probe';
import { liveWorkers } from './infra/workers';
import { JobRecords } from './jobs/job-records';

@Controller()
export class SystemController implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly probe: RedisProbe;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONFIG) config: ApiConfig,
    private readonly records: JobRecords,
  ) {
    this.probe = new RedisProbe(redis, { probeMs: config.healthProbeMs, staleMs: config.redisStaleMs });
  }

  onApplicationBootstrap(): void {
    this.probe.start();
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

  /** Readiness: as /health, with how long Redis takes to answer (slow is not down). */
  @Get('ready')
  ready(@Res({ passthrough: true }) res: Response): Readiness {
    const s = this.probe.status();
    res.setHeader('Cache-Control', 'no-store');
    if (!s.up) res.status(503);
    return {
      status: s.up ? 'ok' : 'unavailable',
      redis: s.up ? 'up' : 'down',
      redisLatencyMs: s.latencyMs,
      redisAnsweredAt: s.lastPongAt,
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
