import { Controller, Get, Inject } from '@nestjs/common';
import type { JobContract } from '@relu-lstm/jobs';
import { CONTRACT } from '../infra/tokens';
import { buildOpenApi } from './openapi';

const VERSION = '0.1.0';

/** GET /docs (and /docs/openapi.json): the OpenAPI document, built once. */
@Controller('docs')
export class DocsController {
  private readonly doc: Record<string, unknown>;

  constructor(@Inject(CONTRACT) contract: JobContract) {
    this.doc = buildOpenApi(contract, VERSION);
  }

  @Get()
  docs(): Record<string, unknown> {
    return this.doc;
  }

  @Get('openapi.json')
  json(): Record<string, unknown> {
    return this.doc;
  }
}
