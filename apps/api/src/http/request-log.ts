/**
 * Request ids and the access log. Every request gets an id (the caller's `X-Request-Id` when it is a
 * short safe token, else a new UUID), answered in `X-Request-Id` and put on every line logged while
 * the request is handled (`withLogFields`), ending with one access line: method, route template
 * (never the raw URL, its query or any body), status and duration. Probes (/health, /ready,
 * /metrics) log their access line at `debug`, so a scraper does not fill the log.
 */
import { randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { withLogFields } from '@relu-lstm/jobs/logging';
import { routeOf } from '../routes';

export const REQUEST_ID_HEADER = 'X-Request-Id';
const CALLER_ID = /^[A-Za-z0-9._:-]{1,64}$/;
const PROBES = new Set(['/health', '/ready', '/metrics']);
const REQUEST_ID = Symbol('requestId');

export function requestIdOf(req: Request): string | undefined {
  return (req as unknown as Record<symbol, string | undefined>)[REQUEST_ID];
}

/** First middleware: assigns the id, answers it, and writes the access line when the answer is done. */
export function requestIds(): RequestHandler {
  const log = new Logger('http');
  return (req: Request, res: Response, next: NextFunction) => {
    const given = req.headers[REQUEST_ID_HEADER.toLowerCase()];
    const requestId = typeof given === 'string' && CALLER_ID.test(given) ? given : randomUUID();
    (req as unknown as Record<symbol, string>)[REQUEST_ID] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const route = routeOf(req) ?? 'unmatched';
      const ms = Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10;
      const line = `${req.method} ${route} ${res.statusCode} ${ms} ms${res.writableFinished ? '' : ' (closed early)'}`;
      withLogFields({ requestId }, () => (PROBES.has(route) ? log.debug(line) : log.log(line)));
    });
    withLogFields({ requestId }, next);
  };
}

/**
 * The request's log context again, after the body parser: a parser resumes the chain from the
 * socket's stream events, outside the context `requestIds` opened.
 */
export function requestLogContext(): RequestHandler {
  return (req: Request, _res: Response, next: NextFunction) => {
    const requestId = requestIdOf(req);
    if (requestId === undefined) return next();
    withLogFields({ requestId }, next);
  };
}
