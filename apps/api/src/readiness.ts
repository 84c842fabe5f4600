/**
 * What `/ready` adds to the Redis probe (redis-probe.ts): the artifact store, through its `probe`
 * (a HEAD of the bucket, or a statfs of the directory with its free space), and which queues a live
 * worker serves (from the heartbeats). Like the Redis probe, `/ready` answers from what these
 * checks last found, at once (a slow store or a busy Redis never makes it time out); it is public
 * and not rate limited, so each check runs at most once per `cacheMs` however often it is called,
 * and one that has not answered within `timeoutMs` counts as down (the queues: unknown, null).
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

/**
 * A check `/ready` answers from at once: the last result while it is younger than `cacheMs`; past
 * that, the last result again while one refresh runs in the background, or `late(ms)` once that
 * refresh has taken over `timeoutMs`. Only the very first call waits (at most `timeoutMs`).
 */
export class BackgroundCheck<T> {
  private last: { at: number; value: T } | null = null;
  private inFlight: { since: number; done: Promise<void> } | null = null;

  constructor(
    private readonly run: () => Promise<T>,
    private readonly late: (ms: number) => T,
    private readonly opts: { cacheMs: number; timeoutMs: number },
  ) {}

  async status(now = Date.now()): Promise<T> {
    if (this.last === null) {
      await this.refresh().done;
      return this.last!.value;
    }
    if (now - this.last.at >= this.opts.cacheMs) this.refresh();
    const waited = this.inFlight ? now - this.inFlight.since : 0;
    return waited > this.opts.timeoutMs ? this.late(waited) : this.last.value;
  }

  private refresh(): { since: number; done: Promise<void> } {
    if (this.inFlight) return this.inFlight;
    const since = Date.now();
    const done = withTimeout(this.run(), this.opts.timeoutMs, 'check').then(
      (value) => {
        this.last = { at: Date.now(), value };
      },
      () => {
        this.last = { at: Date.now(), value: this.late(Date.now() - since) };
      },
    );
    const flight = { since, done: done.finally(() => (this.inFlight = null)) };
    this.inFlight = flight;
    return flight;
  }
}

/** The artifact store as its `probe` finds it. */
export function storeCheck(store: ArtifactStore, opts: { cacheMs: number; timeoutMs: number }) {
  return new BackgroundCheck<StoreReadiness>(
    () => probeStore(store),
    (ms) => storeDown(`artifact store: no answer within ${ms} ms`),
    opts,
  );
}

async function probeStore(store: ArtifactStore): Promise<StoreReadiness> {
  const started = Date.now();
  try {
    const p = await store.probe();
    return {
      status: 'up',
      kind: p.kind,
      latencyMs: Date.now() - started,
      freeBytes: p.freeBytes ?? null,
      totalBytes: p.totalBytes ?? null,
      error: null,
    };
  } catch (e) {
    return storeDown((e as Error).message);
  }
}

const storeDown = (error: string): StoreReadiness => ({
  status: 'down',
  kind: null,
  latencyMs: null,
  freeBytes: null,
  totalBytes: null,
  error,
});

/** Per queue, the live workers that consume it (from the heartbeats); null when they cannot be read in time. */
export function queueCheck(redis: Redis, keys: RedisKeys, opts: { cacheMs: number; timeoutMs: number }) {
  return new BackgroundCheck<QueueReadiness | null>(
    () => queueReadiness(redis, keys),
    () => null,
    opts,
  );
}

async function queueReadiness(redis: Redis, keys: RedisKeys): Promise<QueueReadiness | null> {
  try {
    const workers = await liveWorkers(redis, keys);
    const count = (q: QueueName) => workers.filter((w) => w.queues.includes(q)).length;
    return Object.fromEntries(
      QUEUE_NAMES.map((q) => [q, { workers: count(q), served: count(q) > 0 }]),
    ) as QueueReadiness;
  } catch {
    return null;
  }
}
