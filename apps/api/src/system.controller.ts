/**
 * GET /health (Redis reachable?) and GET /v1/workers (live workers from their heartbeats).
 */
import { Controller, Get, Inject, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Redis } from 'ioredis';
import type { RedisKeys, WorkerList } from '@relu-lstm/jobs';
import { tenantOf } from './http/tenant';
import { KEYS, REDIS } from './infra/tokens';
import { liveWorkers } from './infra/workers';
import { JobRecords } from './jobs/job-records';

const HEALTH_TIMEOUT_MS = 1000;

@Controller()
export class SystemController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    private readonly records: JobRecords,
  ) {}

  /** 200 when Redis answers a PING within a second, 503 otherwise (at once while disconnected). */
  @Get('health')
  async health(@Res({ passthrough: true }) res: Response): Promise<{ status: 'ok' | 'unavailable'; redis: 'up' | 'down' }> {
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      this.redis.ping().then(() => true, () => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), HEALTH_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    res.setHeader('Cache-Control', 'no-store');
    if (!up) {
      res.status(503);
      return { status: 'unavailable', redis: 'down' };
    }
    return { status: 'ok', redis: 'up' };
  }

  /**
   * Workers whose heartbeat has not expired, sorted by id. Workers are shared, jobs are not: the
   * job a worker runs is shown only to the tenant that owns it (null for the others).
   */
  @Get('v1/workers')
  async workers(@Req() req: Request): Promise<WorkerList> {
    const tenant = tenantOf(req);
    const items = await liveWorkers(this.redis, this.keys);
    const owned = await this.records.metas(items.map((w) => w.currentJobId ?? ''), tenant);
    return { items: items.map((w, i) => (w.currentJobId && !owned[i] ? { ...w, currentJobId: null } : w)) };
  }
}
