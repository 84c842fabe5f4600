/**
 * POST /v1/datasets (JSON `{ x, y, lengths?, description? }` or CSV, see csv.ts), GET /v1/datasets,
 * GET and DELETE /v1/datasets/:id (the Redis side in catalog.ts). The body is parsed as a stream (stream-parse.ts, csv.ts) straight into the
 * dataset store (DATASET_DIR), at most MAX_DATASET_UPLOADS at once; the metadata goes to Redis.
 */
import { randomUUID } from 'node:crypto';
import { Controller, Delete, Get, HttpCode, Inject, Param, Post, Query, Req } from '@nestjs/common';
import type { Request } from 'express';
import {
  DatasetMetaSchema,
  validate,
  type DatasetList,
  type DatasetMeta,
  type DatasetStore,
  type DatasetView,
  type JobContract,
} from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import type { ApiConfig } from '../config';
import { CONFIG, CONTRACT, DATASET_STORE } from '../infra/tokens';
import { DatasetCatalog, datasetView } from './catalog';
import { parseCsvUpload } from './csv';
import { JsonSyntaxError } from './json-tokens';
import { parseJsonUpload, type DatasetSummary, type ParsedUpload } from './stream-parse';
import { bodyText, UploadSlots } from './upload';

@Controller('v1/datasets')
export class DatasetsController {
  private readonly slots: UploadSlots;

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(CONTRACT) private readonly contract: JobContract,
    @Inject(DATASET_STORE) private readonly store: DatasetStore,
    private readonly catalog: DatasetCatalog,
  ) {
    this.slots = new UploadSlots(config.maxDatasetUploads);
  }

  @Post()
  @HttpCode(201)
  async create(@Req() req: Request): Promise<DatasetView> {
    const tenant = tenantOf(req);
    const format = req.is('application/json') ? 'json' : req.is('text/csv') ? 'csv' : null;
    let release: () => void;
    try {
      if (!format) throw new ApiError(415, 'unsupported_media_type', 'send a dataset as application/json or text/csv');
      await this.catalog.checkRoom(tenant);
      release = this.slots.acquire();
    } catch (e) {
      // Refused unread: the body is drained and dropped, so the client (still sending) gets the answer.
      req.resume();
      throw e;
    }
    try {
      const id = randomUUID();
      const parsed = await this.storeUpload(id, format, req);
      const { description } = parsed;
      const meta: DatasetMeta = DatasetMetaSchema.parse({
        id,
        tenant,
        samples: parsed.samples,
        seqLen: parsed.seqLen,
        inputSize: parsed.inputSize,
        targetShape: parsed.targetShape,
        hasLengths: parsed.hasLengths,
        format,
        bytes: parsed.bytes,
        ...(description !== undefined ? { description } : {}),
        createdAt: Date.now(),
      });
      try {
        await this.catalog.record(meta);
      } catch (e) {
        await this.store.remove(id).catch(() => undefined);
        throw e;
      }
      return datasetView(meta);
    } finally {
      release();
    }
  }

  /** The one place an upload reaches the store: parsed as a stream into its writer, committed if valid. */
  private async storeUpload(
    id: string,
    format: 'json' | 'csv',
    req: Request,
  ): Promise<DatasetSummary & { bytes: number }> {
    const writer = await this.store.writer(id);
    let parsed: ParsedUpload;
    try {
      const text = bodyText(req, this.config.datasetBodyLimit);
      parsed =
        format === 'json'
          ? await parseJsonUpload(text, this.contract, writer)
          : await parseCsvUpload(text, this.contract, writer);
    } catch (e) {
      await writer.abort();
      if (e instanceof JsonSyntaxError)
        throw new ApiError(400, 'invalid_json', `the body is not valid JSON: ${e.message}`);
      throw e;
    }
    if (!parsed.ok) {
      await writer.abort();
      throw ApiError.invalid(parsed.issues, format === 'csv' ? 'the CSV is invalid; see issues' : undefined);
    }
    // A CSV body has no room for the description: it comes as a query parameter.
    const query = format === 'csv' && typeof req.query.description === 'string' ? req.query.description : undefined;
    const description = validate(this.contract.DatasetInput.shape.description, query);
    if (!description.ok) {
      await writer.abort();
      throw ApiError.invalid(description.issues.map((i) => ({ ...i, path: 'description' })));
    }
    const { bytes } = await writer.commit();
    return { ...parsed.value, ...(query !== undefined ? { description: query } : {}), bytes };
  }

  @Get()
  list(@Req() req: Request, @Query() query: Record<string, unknown>): Promise<DatasetList> {
    return this.catalog.list(query, tenantOf(req));
  }

  @Get(':id')
  async get(@Req() req: Request, @Param('id') id: string): Promise<DatasetView> {
    const meta = await this.catalog.meta(id, tenantOf(req));
    if (!meta) throw ApiError.notFound(`dataset ${id}`);
    return datasetView(meta);
  }

  /** 204; 404 if not the tenant's; 409 naming the queued or running jobs that use it. */
  @Delete(':id')
  @HttpCode(204)
  async remove(@Req() req: Request, @Param('id') id: string): Promise<void> {
    await this.catalog.remove(id, tenantOf(req));
    await this.store.remove(id);
  }
}
