/**
 * A 10 s Redis outage under load, with real processes: the test's own `redis-server` (never the
 * shared one), the compiled api and two compiled workers on it, four training jobs acknowledged
 * (202) by the api, then Redis crashes (SIGKILL) while they run and is restarted on the same port
 * 10 s later from its append-only file.
 *
 * Why a crash and a restart from the AOF, and not SIGSTOP: a stopped Redis keeps its sockets open,
 * so it tests a network black hole, not "Redis is down"; a killed one refuses connections, which is
 * what a Redis restart, a failover or a lost host looks like to the clients. `--appendfsync always`
 * because the promise is about jobs Redis acknowledged: with `everysec` (docker-compose) a crash
 * can lose up to the last second of writes, which a clean restart or a network outage does not.
 *
 * Checked: while Redis is down the api answers 503 within 2 s (submissions and /health), the
 * workers stay up and reconnect by themselves, the running jobs keep their workers (their locks,
 * 30 s by default, outlive the outage: no stall), and every acknowledged job completes afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Redis } from 'ioredis';
import { type JobEvent, type StateEvent } from '@relu-lstm/jobs';
import { Harness, waitFor, type WorkerProcess } from './harness';

jest.setTimeout(300_000);

const API_MAIN = path.resolve(__dirname, '..', '..', 'api', 'dist', 'main.js');
const OUTAGE_MS = 10_000;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** The test's own Redis: AOF on, fsync at every write, no RDB snapshots, in a temporary directory. */
async function startRedis(port: number, dir: string): Promise<ChildProcess> {
  const proc = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--dir',
      dir,
    ],
    { stdio: 'ignore' },
  );
  const probe = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await waitFor(
      async () => {
        try {
          if (probe.status !== 'ready') await probe.connect();
          return (await probe.ping()) === 'PONG';
        } catch {
          probe.disconnect();
          return false;
        }
      },
      10_000,
      () => `redis-server on port ${port} did not answer`,
    );
  } finally {
    probe.disconnect();
  }
  return proc;
}

function http(
  url: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; json: any; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      `${url}${route}`,
      {
        method,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
        timeout: 15_000,
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : null, ms: Date.now() - t0 }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${route}: no answer in 15 s`)));
    req.on('error', reject);
    req.end(data);
  });
}

const TRAIN = {
  model: { inputSize: 1, hiddenSize: 16, outputSize: 1 },
  data: { synthetic: { kind: 'sine', samples: 128, seqLen: 20 } },
  training: { epochs: 40, batchSize: 16, learningRate: 0.01, seed: 2, checkpointEvery: 5, progressEvery: 4 },
};

describe('Redis down for 10 s', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'redis-outage-'));
  let port: number;
  let redis: ChildProcess;
  let h: Harness;
  let api: ChildProcess;
  let apiOut = '';

  beforeAll(async () => {
    port = await freePort();
    redis = await startRedis(port, dir);
    h = new Harness({}, `redis://127.0.0.1:${port}`);
  });

  afterAll(async () => {
    api?.kill('SIGKILL');
    await h?.close();
    redis?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('the api answers 503 fast, the workers reconnect, and every acknowledged job completes', async () => {
    const workers: WorkerProcess[] = await Promise.all([h.startReadyWorker(), h.startReadyWorker()]);
    api = spawn(process.execPath, [API_MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        NO_COLOR: '1',
        PORT: '0',
        HOST: '127.0.0.1',
        REDIS_URL: h.redisUrl,
        QUEUE_PREFIX: h.prefix,
        ARTIFACT_DIR: h.artifactDir,
        DATASET_DIR: h.datasetDir,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    api.stdout!.on('data', (d) => (apiOut += d));
    api.stderr!.on('data', (d) => (apiOut += d));
    let url = '';
    await waitFor(
      () => Boolean((url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(apiOut)?.[1] ?? '')),
      30_000,
      () => `api did not start:\n${apiOut}`,
    );

    // Four jobs acknowledged before the outage: two run (one per worker), two wait.
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await http(url, 'POST', '/v1/jobs/train', { ...TRAIN, training: { ...TRAIN.training, seed: i + 1 } });
      expect(r.status).toBe(202);
      ids.push(r.json.id);
    }
    await waitFor(
      async () =>
        (await Promise.all(ids.map((id) => h.allEvents(id)))).filter((ev) => ev.some((e) => e.type === 'metric'))
          .length >= 2,
      60_000,
      () => 'two jobs never started',
    );

    // Outage: Redis crashes.
    redis.kill('SIGKILL');
    await new Promise((r) => redis.once('exit', r));
    const downAt = Date.now();
    const answers: Array<{ route: string; status: number; ms: number }> = [];
    while (Date.now() - downAt < OUTAGE_MS - 1500) {
      const post = await http(url, 'POST', '/v1/jobs/train', TRAIN);
      const health = await http(url, 'GET', '/health');
      answers.push(
        { route: 'POST /v1/jobs/train', status: post.status, ms: post.ms },
        { route: 'GET /health', status: health.status, ms: health.ms },
      );
      await new Promise((r) => setTimeout(r, 1000));
    }
    await new Promise((r) => setTimeout(r, Math.max(0, downAt + OUTAGE_MS - Date.now())));
    for (const w of workers) expect(w.proc.exitCode).toBeNull();

    // Back, with its data (the AOF), on the same port.
    redis = await startRedis(port, dir);
    const upAt = Date.now();
    const downMs = upAt - downAt;
    await waitFor(
      async () => (await http(url, 'GET', '/health')).status === 200,
      30_000,
      () => `the api did not see Redis again:\n${apiOut}`,
    );
    const apiBackMs = Date.now() - upAt;

    const ends = await Promise.all(ids.map((id) => h.waitForEnd(id, 240_000)));
    const lastState = (ev: JobEvent[]) => ev.filter((e): e is StateEvent => e.type === 'state').pop()!;
    expect(ends.map((ev) => lastState(ev).state)).toEqual(['completed', 'completed', 'completed', 'completed']);
    expect(ends.map((ev) => ev.filter((e) => e.type === 'state' && e.state === 'completed').length)).toEqual([
      1, 1, 1, 1,
    ]);
    const firstMetricAfter = Math.min(
      ...ends
        .flat()
        .filter((e) => e.type === 'metric' && e.at > upAt)
        .map((e) => e.at),
    );
    // The locks (30 s) outlived the outage: no job was taken for stalled or started over.
    expect(ends.map((ev) => ev.filter((e) => e.type === 'state' && e.state === 'running').length)).toEqual([
      1, 1, 1, 1,
    ]);
    expect(ends.flat().filter((e) => e.type === 'log' && (e.code === 'stalled' || e.code === 'resumed'))).toEqual([]);
    for (const w of workers) {
      expect(w.proc.exitCode).toBeNull();
      expect(w.output()).toMatch(/redis: connected again/);
    }

    // During the outage every answer was a 503, and a fast one.
    expect(answers.length).toBeGreaterThanOrEqual(6);
    expect(new Set(answers.map((a) => a.status))).toEqual(new Set([503]));
    const slowest = Math.max(...answers.map((a) => a.ms));
    expect(slowest).toBeLessThan(2000);
    console.log(
      `Redis outage: down ${downMs} ms; ${answers.length} api answers during it, all 503, slowest ${slowest} ms; ` +
        `api healthy ${apiBackMs} ms after Redis came back; first metric ${firstMetricAfter - upAt} ms after; ` +
        `4/4 acknowledged jobs completed, 0 stalls, 2 workers up`,
    );
    for (const w of workers) {
      w.proc.kill('SIGTERM');
      const code = await Promise.race([
        w.exited,
        new Promise((r) => setTimeout(() => r('no exit within 30 s'), 30_000)),
      ]);
      if (code !== 0) throw new Error(`worker did not exit 0 on SIGTERM (${String(code)}):\n${w.output()}`);
    }
  });
});
