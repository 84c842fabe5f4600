/**
 * POST /v1/datasets (JSON `{ x, y, lengths?, description? }` or CSV, see csv.ts) and
 * GET /v1/datasets/:id. The arrays go to the dataset store (DATASET_DIR), the metadata to Redis.
 */
import { randomUUID } from 'node:crypto';
import { Controller, Get, HttpCode, Inject, Param, Post, Req } from '@nestjs/common';
import type { Request } from 'express';
import type { Redis } from 'ioredis';
import {
  DatasetMetaSchema,
  SAFE_ID,
  validate,
  type DatasetMeta,
  type DatasetStore,
  type DatasetView,
  type JobContract,
  type RedisKeys,
} from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { CONTRACT, DATASET_STORE, KEYS, REDIS } from '../infra/tokens';
import { parseDatasetCsv } from './csv';

function view(meta: DatasetMeta): DatasetView {
  const { tenant: _t, ...rest } = meta;
  return rest;
}

@Controller('v1/datasets')
export class DatasetsController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONTRACT) private readonly contract: JobContract,
    @Inject(DATASET_STORE) private readonly store: DatasetStore,
  ) {}

  @Post()
  @HttpCode(201)
  async create(@Req() req: Request): Promise<DatasetView> {
    const tenant = tenantOf(req);
    let input: unknown;
    let format: 'json' | 'csv';
    if (req.is('application/json')) {
      input = req.body;
      format = 'json';
    } else if (req.is('text/csv')) {
      if (typeof req.body !== 'string') throw ApiError.invalid([{ path: '', code: 'invalid_csv', message: 'empty upload', expected: 'CSV text', received: 'nothing' }]);
      const csv = parseDatasetCsv(req.body);
      if (!csv.ok) throw ApiError.invalid(csv.issues, 'the CSV is invalid; see issues');
      const description = typeof req.query.description === 'string' ? req.query.description : undefined;
      input = description === undefined ? csv.value : { ...csv.value, description };
      format = 'csv';
    } else {
      throw new ApiError(415, 'unsupported_media_type', 'send a dataset as application/json or text/csv');
    }
    const parsed = validate(this.contract.DatasetInput, input);
    if (!parsed.ok) throw ApiError.invalid(parsed.issues);
    const d = parsed.value;
    const id = randomUUID();
    const { bytes } = await this.store.put(id, d);
    const yShape = Array.isArray(d.y[0]?.[0]) ? [d.y.length, d.x[0].length, (d.y[0][0] as unknown as number[]).length] : [d.y.length, (d.y[0] as number[]).length];
    const meta: DatasetMeta = DatasetMetaSchema.parse({
      id,
      tenant,
      samples: d.x.length,
      seqLen: d.x[0].length,
      inputSize: d.x[0][0].length,
      targetShape: yShape,
      hasLengths: d.lengths !== undefined,
      format,
      bytes,
      ...(d.description !== undefined ? { description: d.description } : {}),
      createdAt: Date.now(),
    });
    try {
      const res = await this.redis.multi().set(this.keys.dataset(id), JSON.stringify(meta)).zadd(this.keys.datasetIndex(tenant), meta.createdAt, id).exec();
      const failed = res?.find(([err]) => err);
      if (!res || failed) throw failed?.[0] ?? new Error('MULTI aborted');
    } catch (e) {
      await this.store.remove(id).catch(() => undefined);
      throw e;
    }
    return view(meta);
  }

  @Get(':id')
  async get(@Req() req: Request, @Param('id') id: string): Promise<DatasetView> {
    const raw = SAFE_ID.test(id) ? await this.redis.get(this.keys.dataset(id)) : null;
    const meta = raw ? DatasetMetaSchema.safeParse(JSON.parse(raw)) : null;
    if (!meta?.success || meta.data.tenant !== tenantOf(req)) throw ApiError.notFound(`dataset ${id}`);
    return view(meta.data);
  }
}
