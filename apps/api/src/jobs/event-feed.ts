/**
 * Following a job's event stream until it ends: the SSE route and `infer?wait=true` both use it.
 * Each follower holds one blocking Redis connection; their number is capped (`MAX_STREAMS` in all,
 * `MAX_STREAMS_PER_TENANT` per tenant, so one tenant cannot take every slot) and they are all
 * stopped when the api shuts down.
 *
 * The worker writes the terminal state event after BullMQ has recorded the outcome. If the worker
 * died between the two, BullMQ says finished while the stream never will; after two quiet periods
 * in that state the feed makes up the terminal event from BullMQ's record (without a stream id).
 */
import { Inject, Injectable, type BeforeApplicationShutdown } from '@nestjs/common';
import {
  isTerminal,
  isTerminalEvent,
  type JobEventStream,
  type JobMeta,
  type JobView,
  type StoredEvent,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { CONFIG, EVENT_STREAM } from '../infra/tokens';
import { JobRecords } from './job-records';

/**
 * Events read per round trip for a follower. A follower waiting for its client to drain (SSE
 * backpressure) holds one batch decoded: 100 events of ~200 bytes keeps that small.
 */
const FOLLOW_BATCH = 100;

export interface FeedItem {
  /** Stream entry id; absent for a terminal event made up from BullMQ's record. */
  id?: string;
  event: StoredEvent['event'];
}

/** What `infer?wait=true` answers with. */
export type WaitOutcome = Pick<JobView, 'state' | 'result' | 'error'>;

export interface FeedHandlers {
  onEvents(items: FeedItem[]): void | Promise<void>;
  /** Called after each quiet period (no event for `quietMs`). */
  onQuiet?(): void | Promise<void>;
}

@Injectable()
export class EventFeed implements BeforeApplicationShutdown {
  private readonly active = new Map<AbortController, string>();
  private readonly perTenant = new Map<string, number>();

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(EVENT_STREAM) private readonly events: JobEventStream,
    private readonly records: JobRecords,
  ) {}

  /** Throws 503 when too many followers are open, 429 when the tenant has its share open. */
  reserve(tenant: string): AbortController {
    if (this.active.size >= this.config.maxStreams) {
      throw new ApiError(503, 'unavailable', 'too many event streams open; retry later', undefined, {
        'Retry-After': '5',
      });
    }
    const open = this.perTenant.get(tenant) ?? 0;
    if (open >= this.config.maxStreamsPerTenant) {
      throw new ApiError(
        429,
        'quota_exceeded',
        `tenant ${tenant} has ${open} event streams or waiting requests open, the most MAX_STREAMS_PER_TENANT allows; close one or retry later`,
        undefined,
        { 'Retry-After': '5' },
      );
    }
    const ac = new AbortController();
    this.active.set(ac, tenant);
    this.perTenant.set(tenant, open + 1);
    return ac;
  }

  release(ac: AbortController): void {
    const tenant = this.active.get(ac);
    if (tenant === undefined) return;
    this.active.delete(ac);
    const left = (this.perTenant.get(tenant) ?? 1) - 1;
    if (left > 0) this.perTenant.set(tenant, left);
    else this.perTenant.delete(tenant);
  }

  /**
   * Delivers every event after `after` until the terminal state event (returned), or until the signal
   * aborts (returns null).
   */
  async follow(
    meta: JobMeta,
    after: string | undefined,
    quietMs: number,
    signal: AbortSignal,
    h: FeedHandlers,
  ): Promise<FeedItem | null> {
    let finishedChecks = 0;
    for await (const batch of this.events.follow(meta.id, { after, blockMs: quietMs, signal, count: FOLLOW_BATCH })) {
      const terminal = batch.findIndex((e) => isTerminalEvent(e.event));
      if (terminal >= 0) {
        await h.onEvents(batch.slice(0, terminal + 1));
        return batch[terminal];
      }
      if (batch.length) {
        finishedChecks = 0;
        await h.onEvents(batch);
        continue;
      }
      await h.onQuiet?.();
      const view = await this.records.view(meta);
      if (this.recordsFinished(view.state)) {
        if (++finishedChecks >= 2) {
          const made: FeedItem = {
            event:
              view.state === 'completed'
                ? {
                    type: 'state',
                    at: view.finishedAt ?? Date.now(),
                    state: 'completed',
                    ...(view.result ? { result: view.result as never } : {}),
                  }
                : {
                    type: 'state',
                    at: view.finishedAt ?? Date.now(),
                    state: view.state,
                    ...(view.error ? { error: view.error } : {}),
                  },
          };
          await h.onEvents([made]);
          return made;
        }
      }
    }
    return null;
  }

  /**
   * Waits up to `timeoutMs` for the job to finish; returns its state, result and error either way
   * (check the state). `slot` is a follower place from `reserve`, taken by the caller before it
   * submitted the job (so a refusal queues nothing); aborting it (the client went away) stops the
   * wait early. Releases it.
   *
   * The terminal state event carries the result (or the error) and is written only once BullMQ has
   * recorded the outcome, so it is the answer: reading the job back from BullMQ as well cost a
   * round trip and a parse of the whole job for nothing (bench/README.md, "Runner"). The records
   * are read on quiet periods and at the timeout, as before.
   */
  async waitFor(meta: JobMeta, timeoutMs: number, slot: AbortController): Promise<WaitOutcome> {
    const timer = setTimeout(() => slot.abort(), timeoutMs);
    try {
      for await (const batch of this.events.follow(meta.id, {
        blockMs: Math.min(1000, Math.max(50, timeoutMs)),
        signal: slot.signal,
      })) {
        const terminal = batch.find((e) => isTerminalEvent(e.event))?.event;
        if (terminal?.type === 'state')
          return { state: terminal.state, result: terminal.result ?? null, error: terminal.error ?? null };
        if (batch.length === 0) {
          const view = await this.records.view(meta);
          if (isTerminal(view.state)) return view;
        }
      }
    } finally {
      clearTimeout(timer);
      this.release(slot);
    }
    return this.records.view(meta);
  }

  private recordsFinished(state: string): boolean {
    return state === 'completed' || state === 'failed' || state === 'cancelled';
  }

  beforeApplicationShutdown(): void {
    for (const ac of this.active.keys()) ac.abort();
  }
}
