/**
 * /v1/sweeps routes: start a sweep, read it ranked, follow its events, cancel it (sweeps.service.ts).
 */
import { Controller, Delete, Get, HttpCode, Inject, Param, Post, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { isTerminalEvent, type JobEventStream, type SweepSubmitResponse, type SweepView } from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { CONFIG, EVENT_STREAM } from '../infra/tokens';
import { EventFeed } from '../jobs/event-feed';
import { ApiMetrics } from '../metrics/api-metrics';
import { checkedLastEventId, startEventStream, StalledClientError } from '../jobs/sse-writer';
import { SweepsService } from './sweeps.service';

@Controller('v1/sweeps')
export class SweepsController {
  constructor(
    private readonly sweeps: SweepsService,
    private readonly feed: EventFeed,
    @Inject(EVENT_STREAM) private readonly events: JobEventStream,
    @Inject(CONFIG) private readonly config: ApiConfig,
    private readonly metrics: ApiMetrics,
  ) {}

  @Post()
  @HttpCode(202)
  create(@Req() req: Request): Promise<SweepSubmitResponse> {
    if (!req.is('application/json'))
      throw new ApiError(415, 'unsupported_media_type', 'send the sweep as Content-Type: application/json');
    return this.sweeps.create(req.body, tenantOf(req));
  }

  @Get(':id')
  get(@Req() req: Request, @Param('id') id: string): Promise<SweepView> {
    return this.sweeps.get(id, tenantOf(req));
  }

  /**
   * Server-Sent Events of the sweep's stream: a `trial` event per ended trial, then the sweep's
   * terminal state (`completed` or `cancelled`), after which the stream ends. `Last-Event-ID` resumes.
   */
  @Get(':id/events')
  async follow(@Req() req: Request, @Res() res: Response, @Param('id') id: string): Promise<void> {
    const tenant = tenantOf(req);
    await this.sweeps.get(id, tenant); // 404 unless it is the tenant's
    const lastId = checkedLastEventId(req.header('last-event-id'));
    const ac = this.feed.reserve(tenant);
    res.on('close', () => ac.abort());
    const out = startEventStream(res, {
      maxBufferBytes: this.config.sseMaxBufferBytes,
      stallMs: this.config.sseStallMs,
    });
    this.metrics.eventStreams.inc();
    try {
      const opts = { after: lastId, blockMs: this.config.sseKeepAliveMs, signal: ac.signal, count: 100 };
      for await (const batch of this.events.follow(id, opts)) {
        const end = batch.findIndex((e) => isTerminalEvent(e.event));
        if (end >= 0) {
          await out.events(batch.slice(0, end + 1));
          break;
        }
        if (batch.length) await out.events(batch);
        else await out.comment('keep-alive');
      }
    } catch (e) {
      if (!(e instanceof StalledClientError) && !ac.signal.aborted) throw e;
    } finally {
      this.metrics.eventStreams.dec();
      this.feed.release(ac);
      res.end();
    }
  }

  @Delete(':id')
  cancel(@Req() req: Request, @Param('id') id: string): Promise<SweepSubmitResponse> {
    return this.sweeps.cancel(id, tenantOf(req));
  }
}
