/**
 * What `/ready` adds to the Redis probe (redis-probe.ts): the artifact store, through its `probe`
 * (a HEAD of the bucket, or a statfs of the directory with its free space), and which queues a live
 * worker serves (from the heartbeats). `/ready` is public and not rate limited, so the store is
 * asked at most once per `cacheMs` however often the route is called; a probe that does not answer
 * within `timeoutMs` counts as down.
 */
import type { Redis } from 'ioredis';
import { QUEUE_NAMES, type ArtifactStore, type QueueName, type RedisKeys, type Readiness } from '@relu-lstm/jobs';
import { liveWorkers } from './infra/workers';

export type StoreReadiness = Readiness['store'];
export type QueueReadiness = NonNullable<Readiness['queues']>;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

export class StoreCheck {
  private last: { at: number; value: StoreReadiness } | null = null;
  private inFlight: Promise<StoreReadiness> | null = null;

  constructor(
    private readonly store: ArtifactStore,
    private readonly opts: { cacheMs: number; timeoutMs: number },
  ) {}

  /** The cached result while fresh; otherwise one probe, shared by concurrent callers. */
  status(now = Date.now()): Promise<StoreReadiness> {
    if (this.last && now - this.last.at < this.opts.cacheMs) return Promise.resolve(this.last.value);
    this.inFlight ??= this.probe().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async probe(): Promise<StoreReadiness> {
    const started = Date.now();
    let value: StoreReadiness;
    try {
      const p = await withTimeout(this.store.probe(), this.opts.timeoutMs, 'artifact store');
      value = {
        status: 'up',
        kind: p.kind,
        latencyMs: Date.now() - started,
        freeBytes: p.freeBytes ?? null,
        totalBytes: p.totalBytes ?? null,
        error: null,
      };
    } catch (e) {
      value = {
        status: 'down',
        kind: null,
        latencyMs: null,
        freeBytes: null,
        totalBytes: null,
        error: (e as Error).message,
      };
    }
    this.last = { at: Date.now(), value };
    return value;
  }
}

/** Per queue, the live workers that consume it; null when the heartbeats cannot be read in time. */
export async function queueReadiness(redis: Redis, keys: RedisKeys, timeoutMs: number): Promise<QueueReadiness | null> {
  try {
    const workers = await withTimeout(liveWorkers(redis, keys), timeoutMs, 'worker heartbeats');
    const count = (q: QueueName) => workers.filter((w) => w.queues.includes(q)).length;
    return Object.fromEntries(
      QUEUE_NAMES.map((q) => [q, { workers: count(q), served: count(q) > 0 }]),
    ) as QueueReadiness;
  } catch {
    return null;
  }
}
