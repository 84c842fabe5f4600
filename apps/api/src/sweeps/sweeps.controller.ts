/**
 * /v1/sweeps routes: start a sweep, read it ranked, cancel it (sweeps.service.ts).
 */
import { Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { Request } from 'express';
import type { SweepSubmitResponse, SweepView } from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { SweepsService } from './sweeps.service';

@Controller('v1/sweeps')
export class SweepsController {
  constructor(private readonly sweeps: SweepsService) {}

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

  @Delete(':id')
  cancel(@Req() req: Request, @Param('id') id: string): Promise<SweepSubmitResponse> {
    return this.sweeps.cancel(id, tenantOf(req));
  }
}
