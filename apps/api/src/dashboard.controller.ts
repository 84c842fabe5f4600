/**
 * GET /ui, /ui/app.js, /ui/app.css: the dashboard (apps/api/ui, bundled into dist/ui by `npm run
 * build`). Public like /health: the page holds no data; every call it makes carries the user's key.
 * Files are read once, gzipped once, and served with an ETag; the bundle's URLs carry its content
 * hash, so they may be cached for a year, while index.html is revalidated each time.
 */
import { Controller, Get, Req, Res } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Request, Response } from 'express';
import { sendError } from './http/errors';

export const DASHBOARD_DIR = join(__dirname, 'ui');

/** The page's own policy: its scripts, styles and calls from this origin only. helmet's default adds
 * `upgrade-insecure-requests`, which would send a plain-HTTP deployment's asset requests to https. */
export const DASHBOARD_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  gzip: Buffer;
  etag: string;
  type: string;
  cache: string;
}

const FILES = {
  'index.html': { type: 'text/html; charset=utf-8', cache: 'no-cache' },
  'app.js': { type: 'text/javascript; charset=utf-8', cache: 'public, max-age=31536000, immutable' },
  'app.css': { type: 'text/css; charset=utf-8', cache: 'public, max-age=31536000, immutable' },
} as const;
type FileName = keyof typeof FILES;

function load(name: FileName): Asset | null {
  let body: Buffer;
  try {
    body = readFileSync(join(DASHBOARD_DIR, name));
  } catch {
    return null;
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`;
  return { body, gzip: gzipSync(body, { level: 9 }), etag, ...FILES[name] };
}

@Controller('ui')
export class DashboardController {
  private readonly assets = new Map<FileName, Asset | null>();

  @Get()
  page(@Req() req: Request, @Res() res: Response): void {
    this.send('index.html', req, res);
  }

  @Get('app.js')
  script(@Req() req: Request, @Res() res: Response): void {
    this.send('app.js', req, res);
  }

  @Get('app.css')
  style(@Req() req: Request, @Res() res: Response): void {
    this.send('app.css', req, res);
  }

  private asset(name: FileName): Asset | null {
    if (!this.assets.has(name)) this.assets.set(name, load(name));
    return this.assets.get(name)!;
  }

  private send(name: FileName, req: Request, res: Response): void {
    const a = this.asset(name);
    if (!a) {
      this.assets.delete(name); // a build may still produce it
      return sendError(res, 404, 'not_found', `the dashboard is not built (${name} missing): run npm run build`);
    }
    res.setHeader('Content-Security-Policy', DASHBOARD_CSP);
    res.setHeader('Content-Type', a.type);
    res.setHeader('Cache-Control', a.cache);
    res.setHeader('ETag', a.etag);
    res.setHeader('Vary', 'Accept-Encoding');
    if (req.headers['if-none-match'] === a.etag) {
      res.status(304).end();
      return;
    }
    const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (gzip) res.setHeader('Content-Encoding', 'gzip');
    const body = gzip ? a.gzip : a.body;
    res.setHeader('Content-Length', String(body.length));
    res.status(200).end(req.method === 'HEAD' ? undefined : body);
  }
}
