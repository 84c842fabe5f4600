/** Counts and times every request by method, route template and status, once its answer is done. */
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { routeOf } from '../routes';
import type { ApiMetrics } from './api-metrics';

/** Methods labelled as themselves; any other is `other` (label values stay a closed set). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export function requestMetrics(metrics: ApiMetrics): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint();
    res.once('close', () => {
      const method = METHODS.has(req.method) ? req.method : 'other';
      const labels = { method, route: routeOf(req) ?? 'unmatched', status: String(res.statusCode) };
      metrics.requests.inc(labels);
      metrics.requestDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    });
    next();
  };
}
