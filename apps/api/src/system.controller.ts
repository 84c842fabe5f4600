/**
 * GET /health (Redis reachable?) and GET /v1/workers (live workers from their heartbeats).
 */
import { Controller, Get, Inject, Res } from '@nestjs/common';
import type { Response } from 'express';
import type { Redis } from 'ioredis';
import { SAFE_ID, WorkerHeartbeatSchema, type RedisKeys, type WorkerHeartbeat, type WorkerList } from '@relu-lstm/jobs';
import { KEYS, REDIS } from './infra/tokens';

const HEALTH_TIMEOUT_MS = 1000;

@Controller()
export class SystemController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
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

  /** Workers whose heartbeat has not expired, sorted by id. */
  @Get('v1/workers')
  async workers(): Promise<WorkerList> {
    const now = Date.now();
    const ids = (await this.redis.zrangebyscore(this.keys.workers(), now, '+inf')).filter((id) => SAFE_ID.test(id));
    const values = ids.length ? await this.redis.mget(ids.map((id) => this.keys.worker(id))) : [];
    const items: WorkerHeartbeat[] = [];
    for (const v of values) {
      if (!v) continue;
      try {
        const r = WorkerHeartbeatSchema.safeParse(JSON.parse(v));
        if (r.success) items.push(r.data);
      } catch {
        /* skip a malformed heartbeat */
      }
    }
    await this.redis.zremrangebyscore(this.keys.workers(), '-inf', now - 60_000).catch(() => undefined);
    return { items: items.sort((a, b) => a.id.localeCompare(b.id)) };
  }
}
