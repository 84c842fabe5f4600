/**
 * Test harness: starts the compiled api (apps/api/dist/main.js, built by `npm test`'s `npm run
 * build`) as a child process on a free port with a unique queue prefix and temporary data
 * directories, and talks plain HTTP to it. Jest cannot load NestJS 12 (pure ESM) on Node 20, and a
 * real process is what we want to test anyway.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QUEUE_NAMES, type JobData, type QueueName } from '@relu-lstm/jobs';

export const MAIN = resolve(__dirname, '../dist/main.js');
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface ApiProcess {
  url: string;
  prefix: string;
  artifactDir: string;
  datasetDir: string;
  child: ChildProcess;
  output(): string;
  /** SIGTERM, then waits for the exit; returns the exit code (or signal name). */
  stop(): Promise<number | string | null>;
}

/** `cwd`: the process's working directory (default: the test's). */
export async function startApi(env: Record<string, string> = {}, options: { cwd?: string } = {}): Promise<ApiProcess> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
  const prefix = env.QUEUE_PREFIX ?? `test-${randomUUID()}`;
  const dir = await mkdtemp(join(tmpdir(), 'api-test-'));
  const artifactDir = join(dir, 'artifacts');
  const datasetDir = join(dir, 'datasets');
  const child = spawn(process.execPath, [MAIN], {
    cwd: options.cwd,
    env: {
      PATH: process.env.PATH ?? '',
      NO_COLOR: '1',
      PORT: '0',
      HOST: '127.0.0.1',
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      ARTIFACT_DIR: artifactDir,
      DATASET_DIR: datasetDir,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string | null>((r) => child.once('exit', (code, sig) => r(code ?? sig)));
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`api did not start in 20 s:\n${out}`)), 20_000);
    const onData = () => {
      // Whatever HOST it listens on (0.0.0.0 with API keys), the tests reach it over loopback.
      const m = /listening on http:\/\/\S+:(\d+) /.exec(out);
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        res(`http://127.0.0.1:${m[1]}`);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`api exited with ${code} before listening:\n${out}`));
    });
  });
  return {
    url,
    prefix,
    artifactDir,
    datasetDir,
    child,
    output: () => out,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await exited;
      clearTimeout(killer);
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;

  json: any;
}

/** One HTTP request without keep-alive (no sockets left open for jest). */
export function http(
  base: string,
  method: string,
  path: string,
  opts: {
    body?: unknown;
    raw?: string | Buffer;
    headers?: Record<string, string>;
    /** Send `path` byte for byte, without URL normalisation (`/a/../b`, `%zz`): for hostile paths. */
    rawPath?: boolean;
    /** Fail the request when no answer came within this time. */
    timeoutMs?: number;
  } = {},
): Promise<HttpResult> {
  // A raw path is not resolved against the base (`//x` would become a host, `%zz` may throw).
  const u = opts.rawPath ? new URL(base) : new URL(path, base);
  const payload = opts.raw ?? (opts.body === undefined ? undefined : JSON.stringify(opts.body));
  const headers: Record<string, string> = { connection: 'close', ...(opts.headers ?? {}) };
  if (opts.body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
    headers['content-type'] = 'application/json';
  if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload));
  return new Promise((res, rej) => {
    const onResponse = (r: IncomingMessage) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        res({ status: r.statusCode ?? 0, headers: r.headers, text, json });
      });
      r.on('error', rej);
    };
    const req = opts.rawPath
      ? httpRequest({ host: u.hostname, port: u.port, path, method, headers, agent: false }, onResponse)
      : httpRequest(u, { method, headers, agent: false }, onResponse);
    if (opts.timeoutMs !== undefined)
      req.setTimeout(opts.timeoutMs, () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)));
    req.on('error', rej);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface SseEvent {
  id?: string;
  event?: string;

  data: any;
}

/**
 * Reads an SSE response until the server ends it (or `timeoutMs`), returning the events, the
 * comment lines seen and the status.
 */
export function readSse(
  base: string,
  path: string,
  opts: { headers?: Record<string, string>; timeoutMs?: number; onEvent?: (e: SseEvent) => void } = {},
): Promise<{
  status: number;
  headers: IncomingHttpHeaders;
  events: SseEvent[];
  comments: number;
  ended: boolean;
  body: string;
}> {
  return new Promise((res, rej) => {
    const events: SseEvent[] = [];
    let comments = 0;
    let buf = '';
    let body = '';
    const req = httpRequest(
      new URL(path, base),
      {
        method: 'GET',
        headers: { accept: 'text/event-stream', connection: 'close', ...(opts.headers ?? {}) },
        agent: false,
      },
      (r) => {
        const timer = setTimeout(() => {
          req.destroy();
          res({ status: r.statusCode ?? 0, headers: r.headers, events, comments, ended: false, body });
        }, opts.timeoutMs ?? 15_000);
        r.setEncoding('utf8');
        r.on('data', (chunk: string) => {
          body += chunk;
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, i);
            buf = buf.slice(i + 2);
            const e: SseEvent = { data: undefined };
            let isEvent = false;
            for (const line of block.split('\n')) {
              if (line.startsWith(':')) comments++;
              else if (line.startsWith('id: ')) e.id = line.slice(4);
              else if (line.startsWith('event: ')) e.event = line.slice(7);
              else if (line.startsWith('data: ')) {
                e.data = JSON.parse(line.slice(6));
                isEvent = true;
              }
            }
            if (isEvent) {
              events.push(e);
              opts.onEvent?.(e);
            }
          }
        });
        r.on('end', () => {
          clearTimeout(timer);
          res({ status: r.statusCode ?? 0, headers: r.headers, events, comments, ended: true, body });
        });
        r.on('error', () => undefined);
      },
    );
    req.on('error', rej);
    req.end();
  });
}

/** A Redis connection and the api's BullMQ queues under its prefix: what a test looks at behind the api. */
export interface ApiRedis {
  redis: Redis;
  queues: Record<QueueName, Queue<JobData>>;
  /** Closes the queues, deletes every key under the prefix and quits the connection. */
  close(): Promise<void>;
}

export function openApiRedis(prefix: string, url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'): ApiRedis {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  const queues = Object.fromEntries(
    QUEUE_NAMES.map((q) => [q, new Queue<JobData>(q, { connection: { url }, prefix })]),
  ) as Record<QueueName, Queue<JobData>>;
  return {
    redis,
    queues,
    async close() {
      for (const q of Object.values(queues)) await q.close();
      await dropPrefix(redis, prefix);
      await redis.quit();
    },
  };
}

/** Deletes every key under the prefix. */
export async function dropPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await redis.del(...keys);
  } while (cursor !== '0');
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
