#!/usr/bin/env node
// `npm start`: the whole stack on this machine with embedded defaults, in one command.
// - Redis from REDIS_URL (default redis://127.0.0.1:6379); if nothing answers there and the host is
//   local, a `redis-server` child is started on that port (nothing kept on disk) and stopped with us.
// - The api (PORT, default 3000, on loopback) and one worker, each a child process of this one.
// - Artifacts and datasets under ./data.
// Ctrl-C (or SIGTERM) stops the children in reverse order; if one of them dies, the rest are stopped
// and this process exits with its code, so a supervisor sees the failure.
'use strict';
const { spawn } = require('node:child_process');
const net = require('node:net');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const env = {
  ...process.env,
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  ARTIFACT_DIR: process.env.ARTIFACT_DIR ?? path.join(root, 'data', 'artifacts'),
  DATASET_DIR: process.env.DATASET_DIR ?? path.join(root, 'data', 'datasets'),
};

const children = [];
let stopping = false;

function log(msg) {
  process.stdout.write(`[start] ${msg}\n`);
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
  const child = spawn(command, args, { cwd: root, env, stdio: 'inherit' });
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
  Promise.all(children.map(({ child }) => (child.exitCode !== null ? null : new Promise((r) => child.on('exit', r))))).then(
    () => process.exit(code),
  );
}

async function main() {
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
    for (let i = 0; i < 50 && !(await redisAnswers(host, port, password)); i++) await new Promise((r) => setTimeout(r, 100));
  } else {
    log(`Redis at ${host}:${port} does not answer; start it or fix REDIS_URL`);
    process.exit(1);
  }
  run('api', process.execPath, [path.join(root, 'apps/api/dist/main.js')]);
  run('worker', process.execPath, [path.join(root, 'apps/worker/dist/main.js')]);
  process.on('SIGINT', () => stop(0));
  process.on('SIGTERM', () => stop(0));
}

main().catch((err) => {
  log(err.stack ?? String(err));
  stop(1);
});
