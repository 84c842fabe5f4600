/**
 * GET /v1/admin/overview: the operator's view across tenants (queue counts, live workers with
 * their current jobs, each tenant's jobs, live jobs and datasets, and its newest jobs). Only the
 * admin key reaches it (access.ts); the handler checks again, so a routing slip fails closed.
 */
import { Controller, Get, Inject, Req } from '@nestjs/common';
import type { Request } from 'express';
import type { Redis } from 'ioredis';
import { DEFAULT_TENANT, QUEUE_NAMES, type AdminOverview, type RedisKeys } from '@relu-lstm/jobs';
import type { KeyRing } from './http/api-keys';
import { requireAdmin } from './http/tenant';
import { JobQueues } from './infra/job-queues';
import { KEY_RING, KEYS, REDIS } from './infra/tokens';
import { liveWorkers } from './infra/workers';
import { JobRecords } from './jobs/job-records';

const RECENT = 10;

@Controller('v1/admin')
export class AdminController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(KEY_RING) private readonly keyRing: KeyRing,
    private readonly queues: JobQueues,
    private readonly records: JobRecords,
  ) {}

  @Get('overview')
  async overview(@Req() req: Request): Promise<AdminOverview> {
    requireAdmin(req);
    const tenants = this.keyRing.enabled ? this.keyRing.tenants() : [DEFAULT_TENANT];
    const [queueCounts, workers, perTenant] = await Promise.all([
      Promise.all(
        QUEUE_NAMES.map((q) =>
          this.queues.get(q).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'),
        ),
      ),
      liveWorkers(this.redis, this.keys),
      Promise.all(tenants.map((t) => this.tenant(t))),
    ]);
    return {
      queues: Object.fromEntries(QUEUE_NAMES.map((q, i) => [q, queueCounts[i]])),
      workers,
      tenants: perTenant,
    };
  }

  private async tenant(tenant: string): Promise<AdminOverview['tenants'][number]> {
    const [jobs, liveJobs, datasets, ids] = await Promise.all([
      this.redis.zcard(this.keys.jobIndex(tenant)),
      this.redis.scard(this.keys.liveJobs(tenant)),
      this.redis.zcard(this.keys.datasetIndex(tenant)),
      this.redis.zrevrange(this.keys.jobIndex(tenant), 0, RECENT - 1),
    ]);
    const metas = await this.records.metas(ids, tenant);
    const recent = await Promise.all(
      metas
        .filter((m) => m !== null)
        .map(async (m) => ({
          id: m.id,
          type: m.type,
          state: (await this.records.view(m)).state,
          createdAt: m.createdAt,
        })),
    );
    return { tenant, jobs, liveJobs, datasets, recent };
  }
}
