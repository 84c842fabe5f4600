/**
 * The per-job event stream: a Redis stream at `keys.events(jobId)` holding the job's whole history
 * (state changes, every metric point, logs). BullMQ's own events stream is shared by the queue and
 * trimmed, so it cannot replay a job from the start; this one can.
 *
 * Entry format: one field, `event`, whose value is the JSON of a `JobEvent`. The entry id
 * (`<ms>-<seq>`) is the event's id; the api uses it as the SSE `id`, so `Last-Event-ID` resumes.
 * Streams are capped (`MAXLEN ~ maxLen`) so a runaway job cannot fill Redis.
 */
import type { Redis } from 'ioredis';
import { JobEventSchema, type JobEvent, type StoredEvent } from './events';
import type { RedisKeys } from './keys';

/** A stream entry id, or `0` for "from the start". */
export const STREAM_ID = /^(?:0|\d{1,20}-\d{1,20})$/;
export const isStreamId = (s: string): boolean => STREAM_ID.test(s);

export const DEFAULT_STREAM_MAXLEN = 100_000;

export interface FollowOptions {
  /** Read entries after this id (exclusive); default `0`, the start. */
  after?: string;
  /** How long one blocking read waits before yielding an empty batch. Default 5000 ms. */
  blockMs?: number;
  /** Stops the iteration (and interrupts a blocked read). */
  signal?: AbortSignal;
  /** Entries per read. Default 500. */
  count?: number;
}

export interface JobEventStream {
  /** Appends one event; returns its entry id. */
  append(jobId: string, event: JobEvent): Promise<string>;
  /** Entries after `after` (exclusive, default from the start), oldest first, at most `count`. */
  read(jobId: string, opts?: { after?: string; count?: number }): Promise<StoredEvent[]>;
  /** The newest `count` entries, newest first. */
  last(jobId: string, count?: number): Promise<StoredEvent[]>;
  /**
   * Every entry after `opts.after`, then new ones as they come, in batches. A batch is empty when
   * nothing came within `blockMs` (a chance to send keep-alives or check the job). Runs until the
   * caller breaks out or the signal aborts. Blocking reads use a connection of their own, opened on
   * first need and closed when the iteration ends.
   */
  follow(jobId: string, opts?: FollowOptions): AsyncGenerator<StoredEvent[], void, undefined>;
  /** Deletes the stream. */
  remove(jobId: string): Promise<void>;
}

type RawEntry = [id: string, fields: string[]];

function decode([id, fields]: RawEntry): StoredEvent {
  let raw: string | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'event') raw = fields[i + 1];
  try {
    const r = JobEventSchema.safeParse(JSON.parse(raw ?? 'null'));
    if (r.success) return { id, event: r.data };
  } catch {
    /* not JSON */
  }
  const at = Number(id.split('-')[0]);
  return {
    id,
    event: { type: 'log', at, level: 'warning', message: 'unreadable event in the stream', code: 'invalid_event' },
  };
}

export interface EventStreamOptions {
  /**
   * Blocking connections kept open for reuse once a `follow` ends between reads (default 0: each
   * follow opens and closes its own). Opening one costs a TCP connect and two or three round trips,
   * more than a short job's whole wait; the api keeps some for `infer?wait=true` and SSE.
   */
  idleBlockingConnections?: number;
}

export class RedisJobEventStream implements JobEventStream {
  private readonly idle: Redis[] = [];
  private readonly maxIdle: number;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly maxLen: number = DEFAULT_STREAM_MAXLEN,
    options: EventStreamOptions = {},
  ) {
    this.maxIdle = options.idleBlockingConnections ?? 0;
  }

  /** Closes the idle blocking connections (follows still running close their own when they end). */
  close(): void {
    for (const conn of this.idle.splice(0)) conn.disconnect();
  }

  /** An idle blocking connection that is still ready, else a new one (connected). */
  private async blockingConnection(): Promise<Redis> {
    for (let conn = this.idle.pop(); conn; conn = this.idle.pop()) {
      if (conn.status === 'ready') return conn;
      conn.disconnect();
    }
    // Same options as the shared connection, but connected before the first command: a client
    // made with enableOfflineQueue: false would otherwise refuse it.
    const conn = this.redis.duplicate({ lazyConnect: true });
    conn.on('error', () => {}); // reported by the command that fails
    try {
      await conn.connect();
    } catch (e) {
      conn.disconnect();
      throw e;
    }
    return conn;
  }

  async append(jobId: string, event: JobEvent): Promise<string> {
    const json = JSON.stringify(JobEventSchema.parse(event));
    const id = await this.redis.xadd(this.keys.events(jobId), 'MAXLEN', '~', String(this.maxLen), '*', 'event', json);
    return id as string;
  }

  async read(jobId: string, opts: { after?: string; count?: number } = {}): Promise<StoredEvent[]> {
    const after = checkedId(opts.after);
    const res = (await this.redis.xread(
      'COUNT',
      opts.count ?? 1000,
      'STREAMS',
      this.keys.events(jobId),
      after,
    )) as Array<[string, RawEntry[]]> | null;
    return res ? res[0][1].map(decode) : [];
  }

  async last(jobId: string, count = 1): Promise<StoredEvent[]> {
    const res = (await this.redis.xrevrange(this.keys.events(jobId), '+', '-', 'COUNT', count)) as RawEntry[];
    return res.map(decode);
  }

  async *follow(jobId: string, opts: FollowOptions = {}): AsyncGenerator<StoredEvent[], void, undefined> {
    let after = checkedId(opts.after);
    const blockMs = opts.blockMs ?? 5000;
    const count = opts.count ?? 500;
    const { signal } = opts;
    const key = this.keys.events(jobId);
    let blocking: Redis | null = null;
    /** A blocking read is in flight on `blocking` (then only disconnecting interrupts it). */
    let reading = false;
    let closed = false;
    // Disconnect once: a second ioredis disconnect() arms a 2 s timer that outlives the socket.
    const interrupt = () => {
      if (blocking && reading && !closed) {
        closed = true;
        blocking.disconnect();
      }
    };
    signal?.addEventListener('abort', interrupt, { once: true });
    try {
      // Catch up without blocking, on the shared connection.
      for (;;) {
        if (signal?.aborted) return;
        const batch = await this.read(jobId, { after, count });
        if (batch.length === 0) break;
        after = batch[batch.length - 1].id;
        yield batch;
        if (batch.length < count) break;
      }
      try {
        blocking = await this.blockingConnection();
      } catch (e) {
        if (signal?.aborted) return;
        throw e;
      }
      for (;;) {
        if (signal?.aborted) return;
        let res: Array<[string, RawEntry[]]> | null;
        reading = true;
        try {
          res = (await blocking.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', key, after)) as typeof res;
        } catch (e) {
          if (signal?.aborted) return;
          throw e;
        } finally {
          reading = false;
        }
        const batch = res ? res[0][1].map(decode) : [];
        if (batch.length) after = batch[batch.length - 1].id;
        yield batch;
      }
    } finally {
      signal?.removeEventListener('abort', interrupt);
      if (blocking && !closed) {
        // Between reads (the caller stopped after a batch) the connection is clean: keep it.
        if (!reading && blocking.status === 'ready' && this.idle.length < this.maxIdle) {
          this.idle.push(blocking);
        } else {
          closed = true;
          blocking.disconnect();
        }
      }
    }
  }

  async remove(jobId: string): Promise<void> {
    await this.redis.del(this.keys.events(jobId));
  }
}

function checkedId(after: string | undefined): string {
  const a = after ?? '0';
  if (!isStreamId(a)) throw new Error(`stream id: expected <ms>-<seq> or 0, got ${JSON.stringify(a)}`);
  return a;
}
