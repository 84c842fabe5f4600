/**
 * Redis as `/health` and `/ready` report it: a PING sent in the background every `probeMs`, its
 * outcome cached. The routes answer from the cache at once, so a busy event loop or a slow Redis
 * never makes them time out. Down means the connection is not open, or no PING has been answered
 * for `staleMs`; a slow answer is latency, not down.
 */
import type { Redis } from 'ioredis';

export interface RedisStatus {
  up: boolean;
  /** The last PING's round trip, or how long the one in flight has waited if that is longer. */
  latencyMs: number | null;
  /** When the last PING was answered (ms since the epoch); null before the first. */
  lastPongAt: number | null;
}

export class RedisProbe {
  private timer: NodeJS.Timeout | null = null;
  private sentAt: number | null = null;
  private lastLatency: number | null = null;
  private lastPongAt: number | null = null;
  private readonly startedAt = Date.now();

  constructor(
    private readonly redis: Redis,
    /** `onPong`: each answered PING's round trip in (fractional) ms, for the metrics. */
    private readonly opts: { probeMs: number; staleMs: number; onPong?: (latencyMs: number) => void },
  ) {}

  start(): void {
    this.redis.on('ready', this.onReady);
    this.probe();
    this.timer = setInterval(() => this.probe(), this.opts.probeMs);
    this.timer.unref();
  }

  /** A connection that comes back is probed at once rather than at the next tick. */
  private readonly onReady = () => this.probe();

  stop(): void {
    this.redis.off('ready', this.onReady);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One PING at a time: a slow one is waited for, not stacked. */
  private probe(): void {
    if (this.sentAt !== null) return;
    const sent = Date.now();
    const precise = performance.now();
    this.sentAt = sent;
    this.redis.ping().then(
      () => {
        this.lastPongAt = Date.now();
        this.lastLatency = this.lastPongAt - sent;
        this.sentAt = null;
        this.opts.onPong?.(performance.now() - precise);
      },
      () => {
        this.sentAt = null;
      },
    );
  }

  status(now = Date.now()): RedisStatus {
    const waiting = this.sentAt === null ? null : now - this.sentAt;
    const latencyMs =
      waiting !== null && (this.lastLatency === null || waiting > this.lastLatency) ? waiting : this.lastLatency;
    const answeredSince = this.lastPongAt ?? this.startedAt;
    const up = this.redis.status === 'ready' && this.lastPongAt !== null && now - answeredSince <= this.opts.staleMs;
    return { up, latencyMs, lastPongAt: this.lastPongAt };
  }
}
