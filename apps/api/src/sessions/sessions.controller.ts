/**
 * /v1/sessions routes: open a streaming inference session, step it, read it, close it (sessions.service.ts).
 */
import { Controller, Delete, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import type { Request } from 'express';
import type { SessionStepResult, SessionView } from '@relu-lstm/jobs';
import { ApiError } from '../http/errors';
import { tenantOf } from '../http/tenant';
import { SessionsService } from './sessions.service';

function requireJson(req: Request): void {
  if (!req.is('application/json'))
    throw new ApiError(415, 'unsupported_media_type', 'send the body as Content-Type: application/json');
}

@Controller('v1/sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Post()
  @HttpCode(201)
  open(@Req() req: Request): Promise<SessionView> {
    requireJson(req);
    return this.sessions.open(req.body, tenantOf(req));
  }

  @Post(':id/step')
  @HttpCode(200)
  step(@Req() req: Request, @Param('id') id: string): Promise<SessionStepResult> {
    requireJson(req);
    return this.sessions.step(id, req.body, tenantOf(req));
  }

  @Get(':id')
  get(@Req() req: Request, @Param('id') id: string): Promise<SessionView> {
    return this.sessions.get(id, tenantOf(req));
  }

  @Delete(':id')
  @HttpCode(204)
  async close(@Req() req: Request, @Param('id') id: string): Promise<void> {
    await this.sessions.close(id, tenantOf(req));
  }
}
