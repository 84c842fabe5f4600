/**
 * The access middleware, in front of every route (and of the body parsers, so a stranger's body is
 * never read): finds who the request acts for from `Authorization: Bearer <key>`, charges the rate
 * limit, then lets the request through or answers 401 / 403 / 429.
 *
 * Which rule a path follows is the route table's (routes.ts, `accessOf`):
 *   public             anyone, not limited
 *   admin              the admin key (ADMIN_KEY_HASH) only: no key 401, any other key 403
 *   operator           as admin while API keys are configured; with none (loopback only), anyone
 *   tenant             a tenant's key: none or unknown 401 (also paths no route matches). With no
 *                      keys configured (loopback only, see config.ts) every request acts for the
 *                      tenant `default`.
 *
 * Requests without a valid key are limited per client address (RATE_LIMIT_ANON_*), so guessing
 * keys is slow; the others per tenant (RATE_LIMIT_*). The limit is charged before the answer, so a
 * flood of bad keys gets 429s too.
 */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { DEFAULT_TENANT, type ApiErrorCode } from '@relu-lstm/jobs';
import type { RateLimit } from '../config';
import { accessOf, type RouteAccess } from '../routes';
import type { KeyRing } from './api-keys';
import { sendError } from './errors';
import type { RateLimiter, RateSubject } from './rate-limit';
import { setIdentity, type Identity } from './tenant';

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

const MISSING: Denial = { status: 401, code: 'unauthorized', message: 'missing Authorization: Bearer <API key>' };

/** Who a request with `token` acts for under a route's rule; a new rule must be handled here. */
export function resolveIdentity(
  access: Exclude<RouteAccess, 'public'>,
  token: string | null,
  keys: KeyRing,
): Identity | Denial {
  switch (access) {
    case 'admin':
      return adminIdentity(token, keys);
    case 'operator':
      return keys.enabled ? adminIdentity(token, keys) : { kind: 'admin' };
    case 'tenant':
      return tenantIdentity(token, keys);
  }
}

function adminIdentity(token: string | null, keys: KeyRing): Identity | Denial {
  if (!keys.adminEnabled) {
    return { status: 403, code: 'forbidden', message: 'the admin view is disabled: no ADMIN_KEY_HASH is configured' };
  }
  if (token === null) return MISSING;
  return keys.isAdmin(token)
    ? { kind: 'admin' }
    : { status: 403, code: 'forbidden', message: 'this route needs the admin key' };
}

function tenantIdentity(token: string | null, keys: KeyRing): Identity | Denial {
  if (!keys.enabled) return { kind: 'tenant', tenant: DEFAULT_TENANT };
  if (token === null) return MISSING;
  const tenant = keys.tenantOf(token);
  return tenant === null
    ? { status: 401, code: 'unauthorized', message: 'the API key is not valid' }
    : { kind: 'tenant', tenant };
}

export function accessControl(
  keys: KeyRing,
  limiter: RateLimiter,
  limits: { tenant: RateLimit; anonymous: RateLimit },
): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const access = accessOf(req.path);
    if (access === 'public') return next();
    const who = resolveIdentity(access, bearerToken(req.headers.authorization), keys);
    const ok = 'kind' in who;
    const subject: RateSubject = !ok
      ? { kind: 'ip', id: req.socket.remoteAddress ?? 'unknown' }
      : who.kind === 'tenant'
        ? { kind: 'tenant', id: who.tenant }
        : { kind: 'admin', id: 'admin' };
    limiter.take(subject, ok ? limits.tenant : limits.anonymous).then((d) => {
      if (!d.allowed) {
        const seconds = Math.max(1, Math.ceil(d.retryAfterMs / 1000));
        const limit = ok ? limits.tenant : limits.anonymous;
        const whom =
          subject.kind === 'ip'
            ? 'this client address (no valid key)'
            : subject.kind === 'tenant'
              ? `tenant ${subject.id}`
              : 'the admin key';
        res.setHeader('Retry-After', String(seconds));
        return sendError(
          res,
          429,
          'rate_limited',
          `rate limit of ${limit.rps} requests/s (burst ${limit.burst}) for ${whom} exceeded; retry after ${seconds} s`,
        );
      }
      if (!ok) {
        if (who.status === 401) res.setHeader('WWW-Authenticate', 'Bearer');
        return sendError(res, who.status, who.code, who.message);
      }
      setIdentity(req, who);
      next();
    }, next);
  };
}
