/**
 * /v1/models: the model registry (catalog.ts). POST registers a completed train job's model as the
 * next version of a name; GET lists and reads; the aliases are PUT and DELETEd; a version is
 * DELETEd unless an alias points at it; a version's files download like a job's artifacts.
 */
import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { ArtifactStore, ModelAliasView, ModelList, ModelVersionView, ModelView } from '@relu-lstm/jobs';
import { sendArtifact } from '../http/artifact-download';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { ARTIFACT_STORE } from '../infra/tokens';
import { ModelCatalog } from './catalog';

function requireJson(req: Request): void {
  if (!req.is('application/json')) {
    throw new ApiError(415, 'unsupported_media_type', 'send the body as Content-Type: application/json');
  }
}

@Controller('v1/models')
export class ModelsController {
  constructor(
    private readonly catalog: ModelCatalog,
    @Inject(ARTIFACT_STORE) private readonly store: ArtifactStore,
  ) {}

  @Post()
  @HttpCode(201)
  register(@Req() req: Request, @Body() body: unknown): Promise<ModelVersionView> {
    requireJson(req);
    return this.catalog.register(body, tenantOf(req));
  }

  @Get()
  list(@Req() req: Request, @Query() query: Record<string, unknown>): Promise<ModelList> {
    return this.catalog.list(query, tenantOf(req));
  }

  @Get(':model')
  get(@Req() req: Request, @Param('model') name: string): Promise<ModelView> {
    return this.catalog.model(name, tenantOf(req));
  }

  @Get(':model/versions/:version')
  version(
    @Req() req: Request,
    @Param('model') name: string,
    @Param('version') version: string,
  ): Promise<ModelVersionView> {
    return this.catalog.version(name, version, tenantOf(req));
  }

  @Get(':model/versions/:version/artifacts/:name')
  async artifact(
    @Req() req: Request,
    @Res() res: Response,
    @Param('model') model: string,
    @Param('version') version: string,
    @Param('name') name: string,
  ): Promise<void> {
    const { storageId, label } = await this.catalog.storageOf(model, version, tenantOf(req));
    await sendArtifact(res, { store: this.store, storeId: storageId, name, owner: label });
  }

  @Delete(':model/versions/:version')
  @HttpCode(204)
  async deleteVersion(
    @Req() req: Request,
    @Param('model') name: string,
    @Param('version') version: string,
  ): Promise<void> {
    await this.catalog.deleteVersion(name, version, tenantOf(req));
  }

  @Put(':model/aliases/:alias')
  setAlias(
    @Req() req: Request,
    @Param('model') name: string,
    @Param('alias') alias: string,
    @Body() body: unknown,
  ): Promise<ModelAliasView> {
    requireJson(req);
    return this.catalog.setAlias(name, alias, body, tenantOf(req));
  }

  @Delete(':model/aliases/:alias')
  @HttpCode(204)
  async deleteAlias(@Req() req: Request, @Param('model') name: string, @Param('alias') alias: string): Promise<void> {
    await this.catalog.deleteAlias(name, alias, tenantOf(req));
  }
}
