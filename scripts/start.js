#!/usr/bin/env node
// `npm start`: the whole stack on this machine with embedded defaults, in one command.
// - Redis from REDIS_URL (default redis://127.0.0.1:6379); if nothing answers there and the host is
//   local, a `redis-server` child is started on that port (nothing kept on disk) and stopped with us.
// - The api (PORT, default 3000, on loopback) and the workers, each a child process of this one:
//   WORKERS of them if set, else one per CPU core for CPU workers (wasm and the cpu backend run one
//   thread per process, so a process per core is what uses the machine) and one for tfjs-node
//   (RELU_LSTM_BACKEND=tensorflow, or unset/auto with @tensorflow/tfjs-node(-gpu) installed), which
//   threads by itself and owns the GPU, and one for RELU_LSTM_BACKEND=webgpu.
// - Artifacts and datasets under ./data.
// The variables it reads are checked by the same definitions the api and the worker use
// (@relu-lstm/jobs env.ts, built by `npm start`), so a bad one stops everything before it starts.
// Ctrl-C (or SIGTERM) stops the children in reverse order; if one of them dies, the rest are stopped
// and this process exits with its code, so a supervisor sees the failure.
'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { BACKEND_ENV, COMMON_ENV, integer, optional, parseEnv } = requireBuilt('@relu-lstm/jobs');

const root = path.resolve(__dirname, '..');
// The children run in the repository root: relative directories mean the same here as there.
process.chdir(root);

const START_ENV = {
  ...COMMON_ENV,
  ...BACKEND_ENV,
  WORKERS: optional({
    description: 'worker processes to start; unset: one per core for CPU backends, one with tfjs-node',
    parse: integer(1, 256),
  }),
};
const { values: settings, problems } = parseEnv(START_ENV, process.env);
if (problems.length) {
  for (const p of problems) log(p);
  process.exit(2);
}
const env = {
  ...process.env,
  REDIS_URL: settings.REDIS_URL,
  ARTIFACT_DIR: settings.ARTIFACT_DIR,
  DATASET_DIR: settings.DATASET_DIR,
};

const children = [];
let stopping = false;

function log(msg) {
  process.stdout.write(`[start] ${msg}\n`);
}

/** A workspace package's build output; `npm start` builds first, `node scripts/start.js` may not have. */
function requireBuilt(name) {
  try {
    return require(name);
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') throw err;
    log(`${name} is not built (${err.message.split('\n')[0]}); run \`npm run build\` or use \`npm start\``);
    process.exit(2);
  }
}

function resolvable(name) {
  try {
    require.resolve(name, { paths: [root] });
    return true;
  } catch {
    return false;
  }
}

/** How many worker processes to start: WORKERS, else one per core for CPU backends, one for tfjs-node. */
function workerCount() {
  if (settings.WORKERS !== undefined) return { n: settings.WORKERS, why: 'WORKERS' };
  const backend = settings.RELU_LSTM_BACKEND;
  const tfjsNode =
    backend === 'tensorflow' ||
    (backend === 'auto' && (resolvable('@tensorflow/tfjs-node-gpu') || resolvable('@tensorflow/tfjs-node')));
  if (tfjsNode) return { n: 1, why: 'tfjs-node threads by itself' };
  if (backend === 'webgpu') return { n: 1, why: 'one process drives the GPU (webgpu)' };
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  return { n: Math.max(1, cores), why: `one per core for the ${backend} backend; set WORKERS to change` };
}

/** Resolves true if a Redis server answers PING at host:port within timeoutMs. */
function redisAnswers(host, port, password, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => {
      if (password) socket.write(`AUTH ${password}\r\n`);
      socket.write('PING\r\n');
    });
    socket.on('data', (buf) => {
      if (buf.toString().includes('PONG')) done(true);
      else if (buf.toString().startsWith('-')) done(false);
    });
  });
}

function run(name, command, args) {
  // Each child in a process group of its own: Ctrl-C in a terminal signals the foreground group, and
  // a worker that got SIGINT from the terminal and then SIGTERM from stop() would take the second
  // signal as "exit now" and skip its graceful shutdown. So only this process forwards signals.
  const child = spawn(command, args, { cwd: root, env, stdio: 'inherit', detached: true });
  children.push({ name, child });
  child.on('exit', (code, signal) => {
    if (stopping) return;
    log(`${name} exited (${signal ?? code}); stopping the rest`);
    stop(code ?? 1);
  });
  return child;
}

function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const { child } of [...children].reverse()) {
    if (child.exitCode === null) child.kill('SIGTERM');
  }
  // Give graceful shutdowns a moment, then make sure nothing is left behind.
  const timer = setTimeout(() => {
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
    process.exit(code);
  }, 15000);
  timer.unref();
  Promise.all(
    children.map(({ child }) => (child.exitCode !== null ? null : new Promise((r) => child.on('exit', r)))),
  ).then(() => process.exit(code));
}

async function main() {
  const workers = workerCount();
  // Handlers first: the children run in process groups of their own, so a Ctrl-C while we wait for
  // a redis-server we started would otherwise end this process and leave that server running.
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
  process.on('SIGHUP', () => stop(0));
  const url = new URL(env.REDIS_URL);
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 6379);
  const password = url.password ? decodeURIComponent(url.password) : '';
  if (await redisAnswers(host, port, password)) {
    log(`using Redis at ${host}:${port}`);
  } else if (['127.0.0.1', 'localhost', '::1'].includes(host)) {
    log(`no Redis at ${host}:${port}; starting redis-server there (in memory, stopped with this command)`);
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
    if (password) args.push('--requirepass', password);
    const redis = run('redis-server', 'redis-server', args);
    redis.on('error', (err) => {
      log(`could not start redis-server (${err.message}); install Redis or set REDIS_URL`);
      process.exit(1);
    });
    for (let i = 0; i < 50 && !(await redisAnswers(host, port, password)); i++)
      await new Promise((r) => setTimeout(r, 100));
    if (stopping) return; // a signal came while Redis started: start nothing more
  } else {
    log(`Redis at ${host}:${port} does not answer; start it or fix REDIS_URL`);
    process.exit(1);
  }
  run('api', process.execPath, [path.join(root, 'apps/api/dist/main.js')]);
  log(`starting ${workers.n} worker process${workers.n === 1 ? '' : 'es'} (${workers.why})`);
  for (let i = 1; i <= workers.n; i++)
    run(workers.n === 1 ? 'worker' : `worker ${i}`, process.execPath, [path.join(root, 'apps/worker/dist/main.js')]);
}

main().catch((err) => {
  log(err.stack ?? String(err));
  stop(1);
});
