/**
 * The runner under test, as real processes: the compiled api (`apps/api/dist/main.js`) and N
 * compiled workers (`apps/worker/dist/main.js`), against a real Redis under a unique key prefix,
 * with temporary artifact and dataset directories. `stop()` ends the processes and deletes every
 * key under the prefix, so a benchmark leaves nothing behind in a shared Redis.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';

/** This checkout (bench/dist/runner -> the repository root). */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
const apiMain = (root: string) => join(root, 'apps', 'api', 'dist', 'main.js');
const workerMain = (root: string) => join(root, 'apps', 'worker', 'dist', 'main.js');

export interface StackOptions {
  redisUrl: string;
  /** Worker processes to start (each with its own engine child). */
  workers: number;
  /** RELU_LSTM_BACKEND of the workers. */
  backend: string;
  /** Start the api too (the direct BullMQ paths do not need it, but one stack serves every path). */
  api: boolean;
  /** Checkout whose compiled api and worker to run (default this one; another one for before/after). */
  root?: string;
  /** Extra environment for every process (overrides the defaults below). */
  env?: Record<string, string>;
}

export interface Stack {
  prefix: string;
  redisUrl: string;
  artifactDir: string;
  /** `http://127.0.0.1:<port>`; empty when started without the api. */
  apiUrl: string;
  /** Pids of the api and the workers, for the report. */
  pids: { api: number | null; workers: number[] };
  stop(): Promise<void>;
}

interface Child {
  name: string;
  proc: ChildProcess;
  output(): string;
  exited: Promise<void>;
}

function startChild(name: string, main: string, env: Record<string, string>): Child {
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` first`);
  // BENCH_CPU_PROF=<dir>: every runner process (and the engines, which inherit the flags) writes a
  // V8 CPU profile there when it exits.
  const prof = process.env.BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`]
    : [];
  const proc = spawn(process.execPath, [...prof, main], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out += b.toString();
    if (out.length > 200_000) out = out.slice(-100_000); // a long run must not grow this forever
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return { name, proc, output: () => out, exited };
}

async function waitForOutput(child: Child, pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = pattern.exec(child.output());
    if (m) return m;
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(
        `${child.name} exited (${child.proc.exitCode ?? child.proc.signalCode}) before it was ready:\n${child.output()}`,
      );
    }
    if (Date.now() > end) throw new Error(`${child.name} was not ready within ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Deletes every key under `<prefix>:` (SCAN + DEL in batches; never FLUSHDB on a shared Redis). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}

export async function startStack(opts: StackOptions): Promise<Stack> {
  const prefix = `bench-${randomBytes(5).toString('hex')}`;
  const dir = mkdtempSync(join(tmpdir(), 'relu-lstm-bench-'));
  const artifactDir = join(dir, 'artifacts');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    NO_COLOR: '1',
    REDIS_URL: opts.redisUrl,
    QUEUE_PREFIX: prefix,
    ARTIFACT_DIR: artifactDir,
    DATASET_DIR: join(dir, 'datasets'),
    // The per-tenant job quota (200 queued or running) would turn a load run whose queue outgrows the
    // workers into 429s after a few hundred requests, measuring the refusal instead of the submit path.
    // The rate limiter stays on at its default (1000/s per tenant): its Redis round trip is part of
    // every request's cost.
    MAX_QUEUED_JOBS_PER_TENANT: '0',
    ...opts.env,
  };
  const children: Child[] = [];
  // Ctrl-C or a kill of the benchmark still stops the processes and deletes the keys.
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`${signal}: stopping the runner processes and deleting the keys under ${prefix}\n`);
    void stop().finally(() => process.exit(130));
  };
  let stopping: Promise<void> | null = null;
  const stop = () => (stopping ??= stopOnce());
  const stopOnce = async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGTERM');
    const killer = setTimeout(() => children.forEach((c) => c.proc.kill('SIGKILL')), 15_000);
    await Promise.all(children.map((c) => c.exited));
    clearTimeout(killer);
    const redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: 3 });
    try {
      await deletePrefix(redis, prefix);
    } finally {
      redis.disconnect();
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    let apiUrl = '';
    if (opts.api) {
      const api = startChild('api', apiMain(opts.root ?? REPO_ROOT), { ...env, PORT: '0', HOST: '127.0.0.1' });
      children.push(api);
      apiUrl = (await waitForOutput(api, /listening on (http:\/\/127\.0\.0\.1:\d+)/, 30_000))[1];
    }
    const workers: Child[] = [];
    for (let i = 0; i < opts.workers; i++) {
      const w = startChild(`worker ${i + 1}`, workerMain(opts.root ?? REPO_ROOT), {
        RELU_LSTM_BACKEND: opts.backend,
        WORKER_QUEUES: 'cpu,any',
        ...env,
      });
      children.push(w);
      workers.push(w);
    }
    await Promise.all(workers.map((w) => waitForOutput(w, /consuming/, 120_000)));
    return {
      prefix,
      redisUrl: opts.redisUrl,
      artifactDir,
      apiUrl,
      pids: { api: opts.api ? (children[0].proc.pid ?? null) : null, workers: workers.map((w) => w.proc.pid ?? 0) },
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
}
