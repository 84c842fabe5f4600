/**
 * The writing side of the SSE route, with backpressure: once the connection's unsent buffer passes
 * `maxBufferBytes` the writer waits for it to drain before taking more events, so the feed stops
 * reading Redis for a client that does not read. A client still full after `stallMs` is
 * disconnected (it reconnects with Last-Event-ID and resumes where it stopped).
 */
import type { Response } from 'express';
import { isStreamId } from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import type { FeedItem } from './event-feed';

/** Backpressure limits of one stream (SSE_MAX_BUFFER_BYTES, SSE_STALL_MS). */
export interface SseLimits {
  maxBufferBytes: number;
  stallMs: number;
}

/** The resume point a client sent (`Last-Event-ID`): a stream entry id, else a 400; undefined: from the start. */
export function checkedLastEventId(lastId: string | undefined): string | undefined {
  if (lastId === undefined || isStreamId(lastId)) return lastId;
  throw ApiError.invalid([
    {
      path: 'Last-Event-ID',
      code: 'invalid_format',
      message: 'not an event id of this stream',
      expected: '<ms>-<seq>',
      received: JSON.stringify(lastId),
    },
  ]);
}

/** Starts an event-stream response (its headers, the client's reconnect delay) and the writer over it. */
export function startEventStream(res: Response, limits: SseLimits): SseWriter {
  res.writeHead(200, {
    'Content-Type': 'text/event-stream; charset=utf-8',
    'Cache-Control': 'no-cache, no-transform',
    Connection: 'keep-alive',
    'X-Accel-Buffering': 'no',
  });
  res.write('retry: 2000\n\n');
  return new SseWriter(res, limits);
}

export class StalledClientError extends Error {
  constructor(stallMs: number) {
    super(`the client read nothing for ${stallMs} ms with its buffer full; disconnected`);
    this.name = 'StalledClientError';
  }
}

export class SseWriter {
  constructor(
    private readonly res: Response,
    private readonly opts: SseLimits,
  ) {}

  async events(items: FeedItem[]): Promise<void> {
    for (const { id, event } of items)
      this.res.write(`${id ? `id: ${id}\n` : ''}event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
    await this.room();
  }

  async comment(text: string): Promise<void> {
    this.res.write(`: ${text}\n\n`);
    await this.room();
  }

  /** Resolves once the unsent buffer is under the bound; throws `StalledClientError` (and closes) after `stallMs`. */
  private room(): Promise<void> {
    const res = this.res;
    if (res.writableLength <= this.opts.maxBufferBytes || res.destroyed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        res.off('drain', done);
        res.off('close', done);
        res.destroy();
        reject(new StalledClientError(this.opts.stallMs));
      }, this.opts.stallMs);
      res.on('drain', done);
      res.on('close', done);
    });
  }
}
