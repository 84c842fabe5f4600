/**
 * `npm start` (scripts/start.js) as a real process tree against the real Redis under a unique
 * prefix: by default one worker process per core for a CPU backend, WORKERS overrides it, a bad
 * WORKERS is refused, and SIGTERM stops every child gracefully (exit 0, nothing left running).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { dropPrefix, http } from '../apps/api/test/harness';

jest.setTimeout(180_000);

const START = join(__dirname, '..', 'scripts', 'start.js');
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

function startScript(env: Record<string, string>) {
  const prefix = `start-${randomUUID()}`;
  const dir = mkdtempSync(join(tmpdir(), 'relu-lstm-start-'));
  const proc = spawn(process.execPath, [START], {
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      NO_COLOR: '1',
      PORT: '0',
      REDIS_URL,
      QUEUE_PREFIX: prefix,
      ARTIFACT_DIR: join(dir, 'a'),
      DATASET_DIR: join(dir, 'd'),
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | string>((r) => proc.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  const until = async (pred: () => boolean, ms: number) => {
    const end = Date.now() + ms;
    while (!pred()) {
      if (proc.exitCode !== null) throw new Error(`start.js exited (${proc.exitCode}):\n${out}`);
      if (Date.now() > end) throw new Error(`timed out; output:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const cleanup = async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
    const redis = new Redis(REDIS_URL);
    await dropPrefix(redis, prefix);
    await redis.quit();
    rmSync(dir, { recursive: true, force: true });
  };
  return { proc, output: () => out, exited, until, cleanup };
}

const pidAlive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('one worker process per core for a CPU backend by default; SIGTERM stops them all gracefully', async () => {
  const s = startScript({ RELU_LSTM_BACKEND: 'cpu' });
  try {
    const cores = availableParallelism();
    await s.until(
      () => (s.output().match(/consuming/g) ?? []).length >= cores && /listening on http/.test(s.output()),
      120_000,
    );
    expect(s.output()).toContain(`starting ${cores} worker process${cores === 1 ? '' : 'es'} (one per core`);
    const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(s.output())![1];
    let workers: Array<{ pid: number }> = [];
    for (let i = 0; i < 100 && workers.length < cores; i++) {
      workers = (await http(url, 'GET', '/v1/workers')).json.items;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(new Set(workers.map((w) => w.pid)).size).toBe(cores);
    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    await new Promise((r) => setTimeout(r, 200));
    expect(workers.filter((w) => pidAlive(w.pid))).toEqual([]);
    expect(s.output()).not.toMatch(/second SIG/); // one signal per child: a graceful shutdown
  } finally {
    await s.cleanup();
  }
});

test('WORKERS sets the count, and a bad value is refused before anything starts', async () => {
  const bad = startScript({ WORKERS: 'two', QUEUE_PREFIX: 'a b', REDIS_URL: 'http://:hunter2@x' });
  try {
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/WORKERS: expected an integer from 1 to 256 \(got "two"\)/);
    // The variables shared with the api and the worker are checked by their one definition.
    expect(bad.output()).toMatch(/QUEUE_PREFIX: expected one key segment .* \(got "a b"\)/);
    expect(bad.output()).toMatch(/REDIS_URL: expected a redis:\/\/ or rediss:\/\/ URL \(got 17 characters\)/);
    expect(bad.output()).not.toMatch(/hunter2|listening|starting/);
  } finally {
    await bad.cleanup();
  }
  const one = startScript({ WORKERS: '1', RELU_LSTM_BACKEND: 'cpu' });
  try {
    await one.until(() => /consuming/.test(one.output()), 120_000);
    expect(one.output()).toContain('starting 1 worker process (WORKERS)');
    one.proc.kill('SIGTERM');
    expect(await one.exited).toBe(0);
  } finally {
    await one.cleanup();
  }
});

test('a signal while its own redis-server starts stops that server too, and starts nothing else', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
  /** Sends one inline command to 127.0.0.1:port; resolves true if something answered. */
  const send = (command: string) =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.end(`${command}\r\n`));
      socket.on('data', () => socket.destroy());
      socket.on('close', (hadError) => resolve(!hadError));
      socket.on('error', () => undefined);
    });
  const s = startScript({ REDIS_URL: `redis://127.0.0.1:${port}`, WORKERS: '1', RELU_LSTM_BACKEND: 'cpu' });
  try {
    await s.until(() => /starting redis-server there/.test(s.output()), 60_000);
    s.proc.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(s.output()).not.toMatch(/listening on http|starting 1 worker/);
    await new Promise((r) => setTimeout(r, 500));
    expect(await send('PING')).toBe(false); // nothing listens there any more
  } finally {
    await send('SHUTDOWN NOSAVE'); // if the server outlived the script
    await s.cleanup();
  }
});
