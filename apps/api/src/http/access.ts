/**
 * The access middleware, in front of every route (and of the body parsers, so a stranger's body is
 * never read): finds who the request acts for from `Authorization: Bearer <key>`, charges the rate
 * limit, then lets the request through or answers 401 / 403 / 429.
 *
 *   /health, /ready    public, not limited
 *   /v1/admin/...      the admin key (ADMIN_KEY_HASH) only: no key 401, any other key 403
 *   everything else    a tenant's key: none or unknown 401. With no keys configured (loopback
 *                      only, see config.ts) every request acts for the tenant `default`.
 *
 * Requests without a valid key are limited per client address (RATE_LIMIT_ANON_*), so guessing
 * keys is slow; the others per tenant (RATE_LIMIT_*). The limit is charged before the answer, so a
 * flood of bad keys gets 429s too.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { DEFAULT_TENANT, type ApiErrorCode } from '@relu-lstm/jobs';
import type { RateLimit } from '../config';
import type { KeyRing } from './api-keys';
import { sendError } from './errors';
import type { RateLimiter, RateSubject } from './rate-limit';
import { setIdentity, type Identity } from './tenant';

/** Express matches paths case-insensitively and with a trailing slash; so do these. */
export const PUBLIC_PATH = /^\/(?:health|ready)\/?$/i;
export const ADMIN_PATH = /^\/v1\/admin(?:\/|$)/i;

interface Denial {
  status: 401 | 403;
  code: ApiErrorCode;
  message: string;
}

/** The token of `Authorization: Bearer <token>`; null when absent or of another scheme. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  return m ? m[1] : null;
}

export function resolveIdentity(path: string, token: string | null, keys: KeyRing): Identity | Denial {
  const missing: Denial = { status: 401, code: 'unauthorized', message: 'missing Authorization: Bearer <API key>' };
  if (ADMIN_PATH.test(path)) {
    if (!keys.adminEnabled) return { status: 403, code: 'forbidden', message: 'the admin view is disabled: no ADMIN_KEY_HASH is configured' };
    if (token === null) return missing;
    return keys.isAdmin(token) ? { kind: 'admin' } : { status: 403, code: 'forbidden', message: 'this route needs the admin key' };
  }
  if (!keys.enabled) return { kind: 'tenant', tenant: DEFAULT_TENANT };
  if (token === null) return missing;
  const tenant = keys.tenantOf(token);
  return tenant === null ? { status: 401, code: 'unauthorized', message: 'the API key is not valid' } : { kind: 'tenant', tenant };
}

export function accessControl(keys: KeyRing, limiter: RateLimiter, limits: { tenant: RateLimit; anonymous: RateLimit }): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    if (PUBLIC_PATH.test(req.path)) return next();
    const who = resolveIdentity(req.path, bearerToken(req.headers.authorization), keys);
    const ok = 'kind' in who;
    const subject: RateSubject = !ok
      ? { kind: 'ip', id: req.socket.remoteAddress ?? 'unknown' }
      : who.kind === 'tenant'
        ? { kind: 'tenant', id: who.tenant }
        : { kind: 'admin', id: 'admin' };
    limiter.take(subject, ok ? limits.tenant : limits.anonymous).then(
      (d) => {
        if (!d.allowed) {
          const seconds = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
          const limit = ok ? limits.tenant : limits.anonymous;
          const whom = subject.kind === 'ip' ? 'this client address (no valid key)' : subject.kind === 'tenant' ? `tenant ${subject.id}` : 'the admin key';
          res.setHeader('Retry-After', String(seconds));
          return sendError(res, 429, 'rate_limited', `rate limit of ${limit.rps} requests/s (burst ${limit.burst}) for ${whom} exceeded; retry after ${seconds} s`);
        }
        if (!ok) {
          if (who.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
          return sendError(res, who.status, who.code, who.message);
        }
        setIdentity(req, who);
        next();
      },
      next,
    );
  };
}
