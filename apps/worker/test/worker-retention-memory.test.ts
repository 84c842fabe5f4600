/**
 * Redis memory stays flat over a long run of small inference jobs: the compiled worker against a
 * redis-server of its own (so `used_memory` counts nothing but this run), jobs produced as the api
 * produces them with a keep-count of KEEP, in waves of WAVE. After a warm-up (the keep-count and
 * BullMQ's capped events stream are full) the key count and `used_memory` are read, then again at
 * the end; both must stay within a small bound however many jobs ran.
 *
 * RETENTION_JOBS (default 2000) sets the number of jobs; `npm run bench:retention` runs 10 000.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { DEFAULT_JOB_POLICY, DEFAULT_LIMITS, planJob, produceJob, redisKeys, type QueueName } from '@relu-lstm/jobs';
import { WORKER_MAIN, tinyInlineInfer, waitFor } from './harness';

const JOBS = Number(process.env.RETENTION_JOBS ?? 2000);
const WARMUP = Math.min(300, Math.floor(JOBS / 3));
const KEEP = 50;
const WAVE = 25;
/** BullMQ's queue events stream, capped lower than its default 10 000 so the warm-up fills it. */
const EVENTS_MAXLEN = 500;

jest.setTimeout(Math.max(180_000, JOBS * 300));

const H = 4;
const payload = tinyInlineInfer(H);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let redisServer: ChildProcess | null = null;
let workerProc: ChildProcess | null = null;
let workerOut = '';
let redis: Redis;
let queue: Queue;
const dir = mkdtempSync(path.join(os.tmpdir(), 'relu-lstm-retention-mem-'));

afterAll(async () => {
  await queue?.close().catch(() => undefined);
  await redis?.quit().catch(() => redis.disconnect());
  for (const p of [workerProc, redisServer]) {
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

async function memory(): Promise<{ usedMemory: number; keys: number }> {
  const info = await redis.info('memory');
  const used = Number(/used_memory:(\d+)/.exec(info)![1]);
  return { usedMemory: used, keys: await redis.dbsize() };
}

it(`keeps Redis memory flat over ${JOBS} small inference jobs (keep-count ${KEEP})`, async () => {
  const port = await freePort();
  redisServer = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  let spawnError = '';
  redisServer.on(
    'error',
    (e) => (spawnError = `cannot start redis-server (needed for clean memory figures): ${e.message}`),
  );
  const url = `redis://127.0.0.1:${port}`;
  const listening = () =>
    new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
  await waitFor(
    async () => Boolean(spawnError) || (await listening()),
    10_000,
    () => 'redis-server did not start',
  );
  if (spawnError) throw new Error(spawnError);
  redis = new Redis(url, { maxRetriesPerRequest: null });
  const prefix = 'mem';
  const keys = redisKeys(prefix);
  const artifactDir = path.join(dir, 'artifacts');
  queue = new Queue('any', { connection: redis, prefix, streams: { events: { maxLen: EVENTS_MAXLEN } } });
  const q = (_: QueueName) => queue;
  const policy = { ...DEFAULT_JOB_POLICY, keepCompletedCount: KEEP, keepFailedCount: KEEP };

  workerProc = spawn(process.execPath, [WORKER_MAIN], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      REDIS_URL: url,
      QUEUE_PREFIX: prefix,
      ARTIFACT_DIR: artifactDir,
      DATASET_DIR: path.join(dir, 'datasets'),
      RELU_LSTM_BACKEND: 'cpu',
      RETENTION_SWEEP_MS: '1000',
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  workerProc.stdout!.on('data', (b: Buffer) => (workerOut = (workerOut + b.toString()).slice(-20_000)));
  workerProc.stderr!.on('data', (b: Buffer) => (workerOut = (workerOut + b.toString()).slice(-20_000)));
  await waitFor(
    async () => (await redis.zcard(keys.workers())) > 0,
    60_000,
    () => `worker did not start:\n${workerOut}`,
  );

  let done = 0;
  let failed = 0;
  const runWave = async () => {
    const ids: string[] = [];
    for (let i = 0; i < WAVE; i++) {
      const plan = planJob('infer', payload, { limits: DEFAULT_LIMITS, policy });
      await produceJob({ redis, keys, queue: q }, plan);
      ids.push(plan.id);
    }
    await waitFor(
      async () => {
        const c = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
        return c.waiting + c.active + c.delayed + c.prioritized === 0;
      },
      60_000,
      () => `wave did not finish:\n${workerOut}`,
    );
    done += ids.length;
    failed = await queue.getJobCountByTypes('failed');
  };

  const t0 = Date.now();
  while (done < WARMUP) await runWave();
  await new Promise((r) => setTimeout(r, 1500)); // one sweep
  const warm = await memory();
  const t1 = Date.now();
  while (done < JOBS) await runWave();
  // A sweep after the last wave (one period, longer on a loaded machine): then our records follow BullMQ's.
  await waitFor(
    async () => (await redis.zcard(keys.jobIndex('default'))) <= KEEP + WAVE,
    20_000,
    () => `retention never swept the finished jobs' records:\n${workerOut}`,
  );
  const end = await memory();
  const t2 = Date.now();
  const indexSize = await redis.zcard(keys.jobIndex('default'));
  const completed = await queue.getJobCountByTypes('completed');
  const artifactDirs = (() => {
    try {
      return readdirSync(artifactDir).length;
    } catch {
      return 0;
    }
  })();
  const growth = end.usedMemory - warm.usedMemory;
  // What each job would leave behind without retention: its BullMQ hash, our meta, stream, index entry.
  const sample = (await redis.zrange(keys.jobIndex('default'), '-1', '-1'))[0];
  let perJob = 0;
  for (const k of [`${prefix}:any:${sample}`, keys.jobMeta(sample), keys.events(sample)])
    perJob += Number((await redis.call('MEMORY', 'USAGE', k)) ?? 0);
  console.log(
    [
      `retention memory run: ${done} infer jobs (hidden ${H}, seq 3), keep-count ${KEEP}, waves of ${WAVE}, BullMQ events maxLen ${EVENTS_MAXLEN}`,
      `  warm-up ${WARMUP} jobs in ${((t1 - t0) / 1000).toFixed(1)} s; then ${done - WARMUP} jobs in ${((t2 - t1) / 1000).toFixed(1)} s (${((done - WARMUP) / ((t2 - t1) / 1000)).toFixed(1)} jobs/s)`,
      `  after warm-up: used_memory ${warm.usedMemory} B, ${warm.keys} keys`,
      `  at the end:    used_memory ${end.usedMemory} B, ${end.keys} keys`,
      `  growth:        ${growth} B (${(growth / 1024).toFixed(1)} KiB) over ${done - WARMUP} jobs = ${(growth / (done - WARMUP)) | 0} B/job`,
      `  without retention each job would keep ~${perJob} B (MEMORY USAGE of its hash, meta and stream): ~${(((done - WARMUP) * perJob) / 1024 / 1024).toFixed(1)} MiB over the measured jobs`,
      `  tenant index ${indexSize} entries, BullMQ completed ${completed}, failed ${failed}, artifact dirs ${artifactDirs}`,
    ].join('\n'),
  );
  expect(failed).toBe(0);
  expect(completed).toBeLessThanOrEqual(KEEP);
  // Our records follow BullMQ's: at most KEEP jobs plus one wave not swept yet.
  expect(indexSize).toBeLessThanOrEqual(KEEP + WAVE);
  // Per kept job: BullMQ's hash, our meta and our stream (+ a few constant keys).
  expect(end.keys).toBeLessThanOrEqual(3 * (KEEP + WAVE) + 30);
  // Flat: well under what 50 retained jobs take, whatever the number of jobs run.
  expect(perJob).toBeGreaterThan(0);
  expect(growth).toBeLessThan(256 * 1024);
});
