/**
 * A small real HTTP server for client tests: node:http on 127.0.0.1 with an ephemeral port, routes as
 * plain functions, every request recorded (method, path, query, headers, body).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
}

export type Handler = (req: Recorded, res: ServerResponse) => void | Promise<void>;

export interface TestServer {
  url: string;
  requests: Recorded[];
  /** Routes by `METHOD /path` (exact) or `METHOD /prefix/*`. */
  route(key: string, handler: Handler): void;
  close(): Promise<void>;
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function apiError(res: ServerResponse, status: number, code: string, message: string, issues?: unknown[]): void {
  sendJson(res, status, { error: { code, message, ...(issues ? { issues } : {}) } });
}

export async function startServer(): Promise<TestServer> {
  const routes = new Map<string, Handler>();
  const requests: Recorded[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => void serve(req, res));
  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const u = new URL(req.url ?? '/', 'http://x');
    const rec: Recorded = {
      method: req.method ?? 'GET',
      path: u.pathname,
      query: u.searchParams,
      headers: req.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    requests.push(rec);
    const exact = routes.get(`${rec.method} ${rec.path}`);
    const prefix = [...routes.entries()].find(
      ([k]) => k.endsWith('/*') && `${rec.method} ${rec.path}`.startsWith(k.slice(0, -1)),
    );
    const handler = exact ?? prefix?.[1];
    if (!handler) return apiError(res, 404, 'not_found', `no route ${rec.method} ${rec.path}`);
    try {
      await handler(rec, res);
    } catch (e) {
      if (!res.headersSent) apiError(res, 500, 'internal', String(e));
      else res.destroy();
    }
  }
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    route: (key, handler) => routes.set(key, handler),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** Writes SSE messages: `{ id, data }` entries, JSON-encoded data, `event:` from the data's type. */
export function sseHead(res: ServerResponse, retryMs?: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.write(retryMs === undefined ? ': hello\n\n' : `retry: ${retryMs}\n\n`);
}

export function sseEvent(res: ServerResponse, id: string, event: { type: string } & Record<string, unknown>): void {
  res.write(`id: ${id}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`);
}
