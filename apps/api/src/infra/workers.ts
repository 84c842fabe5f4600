/** Live workers from their heartbeats (the `<p>:workers` index and `<p>:worker:<id>` values). */
import type { Redis } from 'ioredis';
import { SAFE_ID, WorkerHeartbeatSchema, type RedisKeys, type WorkerHeartbeat } from '@relu-lstm/jobs';

/** Workers whose heartbeat has not expired, sorted by id; drops index entries expired over a minute ago. */
export async function liveWorkers(redis: Redis, keys: RedisKeys): Promise<WorkerHeartbeat[]> {
  const now = Date.now();
  const ids = (await redis.zrangebyscore(keys.workers(), now, '+inf')).filter((id) => SAFE_ID.test(id));
  const values = ids.length ? await redis.mget(ids.map((id) => keys.worker(id))) : [];
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
  await redis.zremrangebyscore(keys.workers(), '-inf', now - 60_000).catch(() => undefined);
  return items.sort((a, b) => a.id.localeCompare(b.id));
}
