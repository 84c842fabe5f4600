/**
 * The ways a job travels from a client to a worker and back, each as `run()`: submit one tiny infer
 * job and resolve once its result is in the client's hands (reject if the job failed).
 *
 *   bullmq        Queue.add of the job data straight onto the `cpu` queue (payload validated once,
 *                 up front); result: BullMQ's `completed` event (QueueEvents).
 *   queue-client  QueueClient.submitInfer of @relu-lstm/client (zod validation, job records, then
 *                 Queue.add, as the api does); result: BullMQ's `completed` event.
 *   rest          POST /v1/jobs/infer (202 with the id); result: BullMQ's `completed` event.
 *   rest-wait     POST /v1/jobs/infer?wait=true; result: the 200 response, which carries it.
 *
 * Every path is consumed by the same worker processes (the real worker app), so the differences
 * are what the producer side costs.
 */
import { Agent, request } from 'node:http';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueClient } from '@relu-lstm/client';
import { DEFAULT_TENANT, contract, planJob, validate, type InferPayloadInput, type PayloadOf } from '@relu-lstm/jobs';

export const PATH_NAMES = ['bullmq', 'queue-client', 'rest', 'rest-wait'] as const;
export type PathName = (typeof PATH_NAMES)[number];

export interface BenchPath {
  name: PathName;
  run: () => Promise<void>;
}

/** A failed submission or job, with what the client saw. */
export class PathError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/**
 * One QueueEvents reader for the `cpu` queue, resolving per-job waiters on `completed` / `failed`.
 * It reads the queue's events stream from its start (the prefix is fresh), so no event can slip by
 * between start-up and the first read; an outcome that arrives before its waiter is kept for it.
 */
export class CompletionWatcher {
  private readonly events: QueueEvents;
  private readonly waiting = new Map<string, { resolve(): void; reject(e: Error): void }>();
  private readonly early = new Map<string, Error | null>();

  constructor(redisUrl: string, prefix: string) {
    this.events = new QueueEvents('cpu', { connection: { url: redisUrl }, prefix, lastEventId: '0-0' });
    this.events.on('error', () => undefined); // a broken connection shows up as jobs that never finish
    this.events.on('completed', ({ jobId }) => this.settle(jobId, null));
    this.events.on('failed', ({ jobId, failedReason }) =>
      this.settle(jobId, new PathError(`job failed: ${failedReason}`)),
    );
  }

  ready(): Promise<void> {
    return this.events.waitUntilReady().then(() => undefined);
  }

  wait(jobId: string): Promise<void> {
    if (this.early.has(jobId)) {
      const err = this.early.get(jobId)!;
      this.early.delete(jobId);
      return err ? Promise.reject(err) : Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiting.set(jobId, { resolve, reject }));
  }

  /** Forgets outcomes nobody waited for (jobs of the rest-wait path). */
  forgetUnclaimed(): void {
    this.early.clear();
  }

  private settle(jobId: string, err: Error | null): void {
    const w = this.waiting.get(jobId);
    if (!w) {
      this.early.set(jobId, err);
      return;
    }
    this.waiting.delete(jobId);
    if (err) w.reject(err);
    else w.resolve();
  }

  close(): Promise<void> {
    return this.events.close();
  }
}

interface HttpAnswer {
  status: number;
  body: string;
}

/**
 * One POST on a keep-alive agent. A kept-alive socket the server closed (its keep-alive timeout) just
 * as it was reused fails with ECONNRESET; that request never reached the api and is sent again once,
 * as Node's documentation advises (`request.reusedSocket`). The retry counts in the latency.
 */
async function post(agent: Agent, url: URL, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  try {
    return await postOnce(agent, url, body, headers);
  } catch (e) {
    if ((e as { reusedSocket?: boolean }).reusedSocket && (e as NodeJS.ErrnoException).code === 'ECONNRESET')
      return postOnce(agent, url, body, headers);
    throw e;
  }
}

function postOnce(agent: Agent, url: URL, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', (e) => reject(Object.assign(e, { reusedSocket: req.reusedSocket })));
    req.end(body);
  });
}

export interface PathsOptions {
  redisUrl: string;
  prefix: string;
  apiUrl: string;
  payload: InferPayloadInput;
  /** Most requests in flight at once (sizes the HTTP agent's socket pool). */
  concurrency: number;
  /** Extra request headers for the REST paths (e.g. an API key). */
  headers: Record<string, string>;
}

/** Everything the paths share, opened once and closed by `close()`. */
export class BenchPaths {
  readonly watcher: CompletionWatcher;
  private readonly redis: Redis;
  private readonly queue: Queue;
  private readonly client: QueueClient;
  private readonly agent: Agent;
  private readonly validated: PayloadOf<'infer'>;
  private readonly body: string;

  constructor(private readonly o: PathsOptions) {
    this.watcher = new CompletionWatcher(o.redisUrl, o.prefix);
    this.redis = new Redis(o.redisUrl, { maxRetriesPerRequest: null });
    this.queue = new Queue('cpu', { connection: this.redis, prefix: o.prefix });
    this.client = new QueueClient({ connection: o.redisUrl, prefix: o.prefix, tenant: DEFAULT_TENANT });
    this.agent = new Agent({ keepAlive: true, maxSockets: o.concurrency * 2 });
    const v = validate(contract.InferPayload, o.payload);
    if (!v.ok) throw new Error(`the benchmark payload does not validate: ${JSON.stringify(v.issues)}`);
    this.validated = v.value;
    this.body = JSON.stringify(o.payload);
  }

  async ready(): Promise<void> {
    await Promise.all([this.watcher.ready(), this.queue.waitUntilReady()]);
  }

  path(name: PathName): BenchPath {
    switch (name) {
      case 'bullmq':
        return {
          name,
          run: async () => {
            const plan = planJob('infer', this.validated, {
              limits: contract.limits,
              tenant: DEFAULT_TENANT,
              id: randomUUID(),
            });
            const done = this.watcher.wait(plan.id);
            await this.queue.add(plan.name, plan.data, plan.opts);
            await done;
          },
        };
      case 'queue-client':
        return {
          name,
          run: async () => {
            const id = randomUUID();
            const done = this.watcher.wait(id);
            await this.client.submitInfer(this.o.payload, { id });
            await done;
          },
        };
      case 'rest': {
        const url = new URL('/v1/jobs/infer', this.o.apiUrl);
        return {
          name,
          run: async () => {
            const r = await post(this.agent, url, this.body, this.o.headers);
            if (r.status !== 202)
              throw new PathError(`POST /v1/jobs/infer answered ${r.status}: ${r.body.slice(0, 200)}`, r.status);
            await this.watcher.wait((JSON.parse(r.body) as { id: string }).id);
          },
        };
      }
      case 'rest-wait': {
        const url = new URL('/v1/jobs/infer?wait=true', this.o.apiUrl);
        return {
          name,
          run: async () => {
            const r = await post(this.agent, url, this.body, this.o.headers);
            if (r.status !== 200)
              throw new PathError(
                `POST /v1/jobs/infer?wait=true answered ${r.status}: ${r.body.slice(0, 200)}`,
                r.status,
              );
            const state = (JSON.parse(r.body) as { state?: string }).state;
            if (state !== 'completed') throw new PathError(`job ended ${state}: ${r.body.slice(0, 200)}`, r.status);
          },
        };
      }
    }
  }

  /** POST /v1/jobs/infer without waiting for the job (warm-up of the api alone). */
  async submitOnly(): Promise<void> {
    const r = await post(this.agent, new URL('/v1/jobs/infer', this.o.apiUrl), this.body, this.o.headers);
    if (r.status !== 202)
      throw new PathError(`POST /v1/jobs/infer answered ${r.status}: ${r.body.slice(0, 200)}`, r.status);
  }

  async close(): Promise<void> {
    this.agent.destroy();
    await this.watcher.close();
    await this.queue.close();
    await this.client.close();
    this.redis.disconnect();
  }
}

export interface LoopResult {
  jobs: number;
  wallMs: number;
  /** Submit-to-result times of the jobs that succeeded, ms. */
  latencies: number[];
  errors: number;
  firstError: string | null;
  /** CPU time the api and the workers (with their engines) used during the loop, ms; null without /proc. */
  cpuMs: { api: number | null; workers: number | null };
}

/** Reads the CPU time used so far by the runner's processes (see `cpuMsOfTree`). */
export type CpuProbe = () => { api: number | null; workers: number | null };

/**
 * Closed loop: `concurrency` clients, each submitting a job and waiting for its result before the
 * next, until `n` jobs have been run.
 */
export async function closedLoop(
  n: number,
  concurrency: number,
  run: () => Promise<void>,
  cpu?: CpuProbe,
): Promise<LoopResult> {
  const latencies: number[] = [];
  let next = 0;
  let errors = 0;
  let firstError: string | null = null;
  const cpu0 = cpu?.();
  const t0 = performance.now();
  const client = async () => {
    while (next < n) {
      next++;
      const start = performance.now();
      try {
        await run();
        latencies.push(performance.now() - start);
      } catch (e) {
        errors++;
        firstError ??= (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, client));
  const wallMs = performance.now() - t0;
  const cpu1 = cpu?.();
  const diff = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null ? b - a : null);
  return {
    jobs: n,
    wallMs,
    latencies,
    errors,
    firstError,
    cpuMs: { api: diff(cpu0?.api, cpu1?.api), workers: diff(cpu0?.workers, cpu1?.workers) },
  };
}
