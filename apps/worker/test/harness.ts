/**
 * Test harness of the worker: a real Redis (REDIS_URL, default redis://127.0.0.1:6379) under a
 * unique queue prefix, a temporary ARTIFACT_DIR, jobs produced the way the api produces them
 * (`planJob` + `produceJob`), and the compiled worker (`apps/worker/dist/main.js`, built by
 * `npm test`'s `npm run build`) started as real child processes. `close()` kills every worker it
 * started, deletes every key under the prefix, quits every connection and removes the directories.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { paginateListObjectsV2 } from '@aws-sdk/client-s3';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  contract,
  openArtifactStore,
  RedisJobEventStream,
  RedisPublishedSets,
  planJob,
  produceJob,
  redisKeys,
  type ArtifactStore,
  type JobEvent,
  type JobOptions,
  type JobPolicy,
  type JobType,
  type PayloadOf,
  type QueueName,
  type RedisKeys,
  type StoredEvent,
  type ModelVersionRef,
} from '@relu-lstm/jobs';
import { parseS3Location, s3ClientFromEnv } from '../../../libs/jobs/src/s3-store';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
export const WORKER_MAIN = path.resolve(__dirname, '..', 'dist', 'main.js');

export interface WorkerProcess {
  proc: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
}

export interface WorkerStartOptions {
  cwd?: string;
}

export class Harness {
  readonly prefix = `wt-${randomBytes(5).toString('hex')}`;
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'relu-lstm-worker-test-'));
  readonly artifactDir = path.join(this.dir, 'artifacts');
  readonly datasetDir = path.join(this.dir, 'datasets');
  readonly redis: Redis;
  readonly keys: RedisKeys = redisKeys(this.prefix);
  readonly events: RedisJobEventStream;
  /** The workers' artifact store: `ARTIFACT_DIR` of the base env (an s3:// store), else `artifactDir`. */
  readonly artifacts: ArtifactStore;
  private readonly queues = new Map<QueueName, Queue>();
  private readonly workers: WorkerProcess[] = [];

  /** `redisUrl`: another Redis than REDIS_URL (a test's own server, which it may stop). */
  constructor(
    private readonly baseEnv: Record<string, string> = {},
    readonly redisUrl: string = REDIS_URL,
  ) {
    if (!existsSync(WORKER_MAIN))
      throw new Error(`${WORKER_MAIN} is missing: run \`npm run build\` first (npm test does)`);
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.events = new RedisJobEventStream(this.redis, this.keys);
    this.artifacts = openArtifactStore(baseEnv.ARTIFACT_DIR ?? this.artifactDir, {
      published: new RedisPublishedSets(this.redis, this.keys),
      env: { ...process.env, ...baseEnv },
    });
  }

  queue(name: QueueName): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.prefix });
      this.queues.set(name, q);
    }
    return q;
  }

  /** Validates nothing: puts exactly `data` on the queue (for invalid-payload tests) under a fresh id. */
  async addRaw(queue: QueueName, name: string, data: unknown): Promise<string> {
    const id = randomUUID();
    await this.queue(queue).add(name, data as never, { jobId: id, attempts: 1 });
    return id;
  }

  /** Produces a job the way the api does (records, `queued` event, then the BullMQ job), validated under the default limits. */
  async submit<T extends JobType>(
    type: T,
    payload: PayloadOf<T>,
    options: { policy?: JobPolicy; job?: JobOptions; modelVersion?: ModelVersionRef } = {},
  ): Promise<string> {
    const plan = planJob(type, payload, { limits: contract.limits, ...options });
    await produceJob({ redis: this.redis, keys: this.keys, queue: (q) => this.queue(q) }, plan);
    return plan.id;
  }

  /** `cwd`: the process's working directory (default: the test's). */
  startWorker(env: Record<string, string> = {}, options: WorkerStartOptions = {}): WorkerProcess {
    const proc = spawn(process.execPath, [WORKER_MAIN], {
      cwd: options.cwd,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        REDIS_URL: this.redisUrl,
        QUEUE_PREFIX: this.prefix,
        ARTIFACT_DIR: this.artifactDir,
        DATASET_DIR: this.datasetDir,
        HEARTBEAT_INTERVAL_MS: '500',
        HEARTBEAT_TTL_MS: '3000',
        CANCEL_POLL_MS: '200',
        ...this.baseEnv,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
    const exited = new Promise<number | string>((resolve) =>
      proc.on('exit', (code, signal) => resolve(signal ?? code ?? -1)),
    );
    const w: WorkerProcess = { proc, output: () => out, exited };
    this.workers.push(w);
    return w;
  }

  /** Starts a worker and waits until its BullMQ workers are consuming. */
  async startReadyWorker(
    env: Record<string, string> = {},
    options: WorkerStartOptions & { timeoutMs?: number } = {},
  ): Promise<WorkerProcess> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    const w = this.startWorker(env, options);
    await waitFor(
      () => /consuming/.test(w.output()),
      timeoutMs,
      () => `worker did not start:\n${w.output()}`,
      w,
    );
    return w;
  }

  async allEvents(jobId: string): Promise<JobEvent[]> {
    const out: StoredEvent[] = [];
    let after = '0';
    for (;;) {
      const batch = await this.events.read(jobId, { after, count: 1000 });
      if (batch.length === 0) break;
      out.push(...batch);
      after = batch[batch.length - 1].id;
    }
    return out.map((e) => e.event);
  }

  /** Waits until the job's stream holds an event matching `pred`; returns all events so far. */
  async waitForEvent(
    jobId: string,
    pred: (e: JobEvent) => boolean,
    timeoutMs: number,
    worker?: WorkerProcess,
  ): Promise<JobEvent[]> {
    let events: JobEvent[] = [];
    await waitFor(
      async () => {
        events = await this.allEvents(jobId);
        return events.some(pred);
      },
      timeoutMs,
      () =>
        `no matching event for job ${jobId} within ${timeoutMs} ms; events: ${JSON.stringify(events.map(brief))}${worker ? `\nworker output:\n${worker.output()}` : ''}`,
    );
    return events;
  }

  /** Waits for the job's terminal state event. */
  waitForEnd(jobId: string, timeoutMs: number, worker?: WorkerProcess): Promise<JobEvent[]> {
    return this.waitForEvent(
      jobId,
      (e) => e.type === 'state' && ['completed', 'failed', 'cancelled'].includes(e.state),
      timeoutMs,
      worker,
    );
  }

  /**
   * Every object stored for the job beneath the store interface, hidden ones (stages, temporaries)
   * included, as paths relative to the job (`.stage-<id>/model.safetensors`), sorted.
   */
  async storedObjects(jobId: string): Promise<string[]> {
    const location = this.baseEnv.ARTIFACT_DIR ?? this.artifactDir;
    if (!location.startsWith('s3://')) {
      const dir = path.join(location, jobId);
      if (!existsSync(dir)) return [];
      const entries = await readdir(dir, { recursive: true, withFileTypes: true });
      return entries
        .filter((e) => e.isFile())
        .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
        .sort();
    }
    const { bucket, prefix } = parseS3Location(location);
    const under = `${prefix ? `${prefix}/` : ''}${jobId}/`;
    const client = s3ClientFromEnv({ ...process.env, ...this.baseEnv });
    const out: string[] = [];
    try {
      for await (const page of paginateListObjectsV2({ client }, { Bucket: bucket, Prefix: under }))
        for (const o of page.Contents ?? []) out.push(o.Key!.slice(under.length));
    } finally {
      client.destroy();
    }
    return out.sort();
  }

  async close(): Promise<void> {
    for (const w of this.workers) if (w.proc.exitCode === null && w.proc.signalCode === null) w.proc.kill('SIGKILL');
    await Promise.all(this.workers.map((w) => w.exited));
    for (const q of this.queues.values()) {
      await q.obliterate({ force: true }).catch(() => undefined);
      await q.close();
    }
    let cursor = '0';
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${this.prefix}:*`, 'COUNT', 500);
      if (keys.length) await this.redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
    await this.redis.quit();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: () => string,
  worker?: WorkerProcess,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (worker && worker.proc.exitCode !== null)
      throw new Error(`worker exited (${worker.proc.exitCode}):\n${worker.output()}`);
    if (Date.now() > end) throw new Error(message());
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** One line per event, for failure messages. */
export function brief(e: JobEvent): string {
  if (e.type === 'state') return `state:${e.state}${e.error ? `(${e.error.code})` : ''}`;
  if (e.type === 'metric') return `metric:e${e.epoch}s${e.step}`;
  if (e.type === 'trial') return `trial:${e.trialId}:${e.state}`;
  return `log:${e.code ?? e.level}`;
}

/**
 * A tiny inference with an inline model (input 1, `hidden` units, a linear head of `outputSize`) over one sequence of
 * 3 steps: a job whose run costs next to nothing, for tests of what surrounds it.
 */
export function tinyInlineInfer(hidden: number, outputSize = 1): PayloadOf<'infer'> {
  const filled = (rows: number, cols: number, v: number) =>
    Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => v * ((i + j) % 3)));
  return contract.InferPayload.parse({
    model: {
      config: { inputSize: 1, hiddenSize: hidden, outputSize },
      stateDict: {
        weight_ih_l0: filled(4 * hidden, 1, 0.1),
        weight_hh_l0: filled(4 * hidden, hidden, 0.05),
        bias_ih_l0: Array(4 * hidden).fill(0),
        bias_hh_l0: Array(4 * hidden).fill(0),
        'head.weight': filled(outputSize, hidden, 0.2),
        'head.bias': Array(outputSize).fill(0),
      },
    },
    inputs: [[[0.1], [0.2], [0.3]]],
  });
}
