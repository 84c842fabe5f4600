/**
 * Error bodies. Every 4xx/5xx answer is `{ error: { code, message, issues? } }` (`ErrorBody` of
 * @relu-lstm/jobs); 400s list each bad field in `issues`. Stack traces are logged, never sent.
 */
import { ArgumentsHost, Catch, HttpException, Logger, type ExceptionFilter } from '@nestjs/common';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { ObjectStoreError, type ApiErrorCode, type ErrorBody, type ValidationIssue } from '@relu-lstm/jobs';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly issues?: ValidationIssue[],
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  static invalid(issues: ValidationIssue[], message = 'the request is invalid; see issues'): ApiError {
    return new ApiError(400, 'invalid_request', message, issues);
  }

  static notFound(what: string): ApiError {
    return new ApiError(404, 'not_found', `${what} not found`);
  }
}

function body(code: ApiErrorCode, message: string, issues?: ValidationIssue[]): ErrorBody {
  return { error: issues ? { code, message, issues } : { code, message } };
}

/** Seconds a client waits before retrying a request the object store failed. */
const STORE_RETRY_AFTER_S = 10;

const STATUS_CODES: Record<number, ApiErrorCode> = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

/** ioredis and BullMQ errors that mean Redis cannot be reached right now. */
export function isRedisUnavailable(e: unknown): boolean {
  const err = e as { name?: string; message?: string; code?: string };
  const msg = err?.message ?? '';
  return (
    err?.name === 'MaxRetriesPerRequestError' ||
    err?.code === 'ECONNREFUSED' ||
    /enableOfflineQueue|Connection is closed|Stream isn't writeable|ECONNREFUSED|ECONNRESET|ETIMEDOUT|Redis is down/i.test(
      msg,
    )
  );
}

export function sendError(
  res: Response,
  status: number,
  code: ApiErrorCode,
  message: string,
  issues?: ValidationIssue[],
): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.status(status).json(body(code, message, issues));
}

@Catch()
export class ErrorFilter implements ExceptionFilter {
  private readonly log = new Logger('http');

  catch(e: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const req = host.switchToHttp().getRequest<Request>();
    if (e instanceof ApiError) {
      for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
      return sendError(res, e.status, e.code, e.message, e.issues);
    }
    if (e instanceof HttpException) {
      const status = e.getStatus();
      const code = STATUS_CODES[status] ?? (status >= 500 ? 'internal' : 'invalid_request');
      const message = status === 404 ? `no route ${req.method} ${req.path}` : e.message;
      return sendError(res, status, code, message);
    }
    if (e instanceof ObjectStoreError) {
      // The details (credentials to check) are for the operator's log, not for the client. Before
      // the Redis check, whose message patterns (ECONNREFUSED) an S3 failure's message may contain.
      this.log.warn(`${req.method} ${req.path}: ${e.message}`);
      res.setHeader('Retry-After', String(STORE_RETRY_AFTER_S));
      return sendError(
        res,
        503,
        'unavailable',
        `the object store (S3 bucket "${e.bucket}") is unavailable or refused access; retry later`,
      );
    }
    if (isRedisUnavailable(e)) {
      this.log.warn(`${req.method} ${req.path}: redis unavailable: ${(e as Error).message}`);
      return sendError(res, 503, 'unavailable', 'the job store (Redis) is unavailable; retry later');
    }
    this.log.error(`${req.method} ${req.path}: ${(e as Error)?.stack ?? String(e)}`);
    return sendError(res, 500, 'internal', 'internal error');
  }
}

/**
 * Wraps a body parser so its errors (too large, bad JSON, bad charset) answer with an error body
 * here instead of reaching Express's default handler.
 */
export function guardedParser(parser: RequestHandler, limitBytes: number): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    parser(req, res, (err?: unknown) => {
      if (!err) return next();
      const e = err as { type?: string; status?: number; message?: string };
      if (e.type === 'entity.too.large' || e.status === 413) {
        return sendError(res, 413, 'payload_too_large', `the body is over the limit of ${limitBytes} bytes`);
      }
      if (e.type === 'entity.parse.failed')
        return sendError(res, 400, 'invalid_json', `the body is not valid JSON: ${e.message}`);
      if (e.type === 'charset.unsupported' || e.type === 'encoding.unsupported' || e.status === 415) {
        return sendError(res, 415, 'unsupported_media_type', e.message ?? 'unsupported encoding');
      }
      return sendError(
        res,
        e.status && e.status < 500 ? e.status : 400,
        'invalid_request',
        e.message ?? 'bad request body',
      );
    });
  };
}
