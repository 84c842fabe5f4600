import type { Request } from 'express';
import { DEFAULT_TENANT } from '@relu-lstm/jobs';

/** The tenant a request acts for. One default tenant until API keys arrive (issue 5). */
export function tenantOf(_req: Request): string {
  return DEFAULT_TENANT;
}
