/**
 * /v1/jobs routes: submit, read, list, cancel, follow events (SSE) and artifacts.
 */
import { Controller, Delete, Get, Headers, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import {
  IDEMPOTENCY_HEADER,
  type ArtifactList,
  type ArtifactStore,
  type CancelResponse,
  type InferWaitResponse,
  type JobList,
  type JobView,
  type SubmitResponse,
} from '@relu-lstm/jobs';
import { Inject } from '@nestjs/common';
import type { ApiConfig } from '../config';
import { sendArtifact } from '../http/artifact-download';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { ARTIFACT_STORE, CONFIG } from '../infra/tokens';
import { ApiMetrics } from '../metrics/api-metrics';
import { EventFeed } from './event-feed';
import { JobsService } from './jobs.service';
import { checkedLastEventId, startEventStream, StalledClientError } from './sse-writer';

function requireJson(req: Request): void {
  if (!req.is('application/json')) {
    throw new ApiError(415, 'unsupported_media_type', 'send the payload as Content-Type: application/json');
  }
}

function parseWait(v: unknown): boolean {
  if (v === undefined || v === 'false' || v === '0') return false;
  if (v === 'true' || v === '1' || v === '') return true;
  throw ApiError.invalid([
    {
      path: 'wait',
      code: 'invalid_value',
      message: 'invalid query parameter',
      expected: 'true or false',
      received: JSON.stringify(v),
    },
  ]);
}

@Controller('v1/jobs')
export class JobsController {
  constructor(
    private readonly jobs: JobsService,
    private readonly feed: EventFeed,
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    private readonly metrics: ApiMetrics,
  ) {}

  @Post('train')
  @HttpCode(202)
  async train(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @Headers(IDEMPOTENCY_HEADER) key?: string,
  ): Promise<SubmitResponse> {
    requireJson(req);
    const r = await this.jobs.submit('train', req.body, tenantOf(req), key);
    if (r.replayed) res.setHeader('Idempotent-Replayed', 'true');
    return r.body;
  }

  @Post('infer')
  @HttpCode(202)
  async infer(
    @Req() req: Request,
    @Res({ passthrough: true }) res: Response,
    @Query('wait') waitParam: unknown,
    @Headers(IDEMPOTENCY_HEADER) key?: string,
  ): Promise<SubmitResponse | InferWaitResponse> {
    requireJson(req);
    const wait = parseWait(waitParam);
    const tenant = tenantOf(req);
    // The place to wait in is taken first: refused (429 for the tenant, 503 for the process), the
    // request must queue nothing, or a client that retries would run the job twice.
    const slot = wait ? this.feed.reserve(tenant) : null;
    let r;
    try {
      r = await this.jobs.submit('infer', req.body, tenant, key);
    } catch (e) {
      if (slot) this.feed.release(slot);
      throw e;
    }
    if (r.replayed) res.setHeader('Idempotent-Replayed', 'true');
    if (!slot) return r.body;
    res.on('close', () => slot.abort());
    // The meta comes back from the submission: reading it again cost a round trip per request.
    const view = await this.feed.waitFor(r.meta, this.config.inferWaitMs, slot);
    if (!this.jobs.isTerminalState(view.state)) return { ...r.body, state: view.state };
    res.status(200);
    return { id: r.body.id, state: view.state, result: view.result, error: view.error, links: r.body.links };
  }

  @Get()
  list(@Req() req: Request, @Query() query: Record<string, unknown>): Promise<JobList> {
    return this.jobs.list(query, tenantOf(req));
  }

  @Get(':id')
  get(@Req() req: Request, @Param('id') id: string): Promise<JobView> {
    return this.jobs.get(id, tenantOf(req));
  }

  @Delete(':id')
  async cancel(
    @Req() req: Request,
    @Param('id') id: string,
    @Res({ passthrough: true }) res: Response,
  ): Promise<CancelResponse> {
    const r = await this.jobs.cancel(id, tenantOf(req));
    res.status(r.status);
    return r.body;
  }

  /**
   * Server-Sent Events: every event of the job's stream from the start (or after `Last-Event-ID`),
   * then live ones, ending after the terminal state event. `id:` is the stream entry id,
   * `event:` the event type (`state`, `metric`, `log`), `data:` the event JSON. Reading Redis waits
   * while the client's unsent buffer is full (SSE_MAX_BUFFER_BYTES); SSE_STALL_MS full, it is closed.
   */
  @Get(':id/events')
  async events(@Req() req: Request, @Res() res: Response, @Param('id') id: string): Promise<void> {
    const meta = await this.jobs.meta(id, tenantOf(req));
    const lastId = checkedLastEventId(
      req.header('last-event-id') ?? (typeof req.query.after === 'string' ? req.query.after : undefined),
    );
    const ac = this.feed.reserve(meta.tenant);
    res.on('close', () => ac.abort());
    const out = startEventStream(res, {
      maxBufferBytes: this.config.sseMaxBufferBytes,
      stallMs: this.config.sseStallMs,
    });
    this.metrics.eventStreams.inc();
    try {
      await this.feed.follow(meta, lastId, this.config.sseKeepAliveMs, ac.signal, {
        onEvents: (items) => out.events(items),
        onQuiet: () => out.comment('keep-alive'),
      });
    } catch (e) {
      if (e instanceof StalledClientError) return;
      if (!ac.signal.aborted)
        res.write(
          `event: error\ndata: ${JSON.stringify({ code: 'unavailable', message: 'the event stream broke; reconnect with Last-Event-ID' })}\n\n`,
        );
      if (!(e instanceof Error && /Connection is closed/.test(e.message))) throw e;
    } finally {
      this.metrics.eventStreams.dec();
      this.feed.release(ac);
      res.end();
    }
  }

  @Get(':id/artifacts')
  async listArtifacts(@Req() req: Request, @Param('id') id: string): Promise<ArtifactList> {
    await this.jobs.meta(id, tenantOf(req));
    const items = await this.artifacts.list(id);
    return {
      jobId: id,
      items: items.map((a) => ({ ...a, url: `/v1/jobs/${id}/artifacts/${encodeURIComponent(a.name)}` })),
    };
  }

  @Get(':id/artifacts/:name')
  async artifact(
    @Req() req: Request,
    @Res() res: Response,
    @Param('id') id: string,
    @Param('name') name: string,
  ): Promise<void> {
    await this.jobs.meta(id, tenantOf(req));
    await sendArtifact(res, { store: this.artifacts, storeId: id, name, owner: `job ${id}` });
  }
}
