/**
 * Who a request acts for, set by the access middleware (access.ts) before any route runs. The
 * routes read it here; a route reached without one fails closed (401), never as some default.
 */
import type { Request } from 'express';
import { ApiError } from './errors';

export type Identity = { kind: 'tenant'; tenant: string } | { kind: 'admin' };

const IDENTITY = Symbol('identity');

export function setIdentity(req: Request, identity: Identity): void {
  (req as unknown as Record<symbol, Identity>)[IDENTITY] = identity;
}

export function identityOf(req: Request): Identity | undefined {
  return (req as unknown as Record<symbol, Identity | undefined>)[IDENTITY];
}

/** The tenant a request acts for. */
export function tenantOf(req: Request): string {
  const id = identityOf(req);
  if (id?.kind !== 'tenant')
    throw new ApiError(401, 'unauthorized', 'this route needs Authorization: Bearer <API key of a tenant>', undefined, {
      'WWW-Authenticate': 'Bearer',
    });
  return id.tenant;
}

/** Throws unless the request carries the admin key. */
export function requireAdmin(req: Request): void {
  if (identityOf(req)?.kind !== 'admin') throw new ApiError(403, 'forbidden', 'this route needs the admin key');
}
