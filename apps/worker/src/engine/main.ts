/**
 * Entry point of the engine: the child process the worker forks (see protocol.ts). It is the only
 * process that loads TensorFlow.js; it initialises the backend once, then runs one train or infer
 * request at a time. It exits when the IPC channel closes, i.e. when the worker exits or dies.
 */
import {
  RedisPublishedSets,
  openArtifactStore,
  openDatasetStore,
  redisKeys,
  type ArtifactStore,
  type JobType,
} from '@relu-lstm/jobs';
import { Redis } from 'ioredis';
import * as tf from '@tensorflow/tfjs-core';
import { initBackendFromEnv } from './backend';
import { toJobError } from './errors';
import { runInfer } from './infer';
import { ModelCache } from './models';
import type { EngineInit, FromEngine, RunRequest, RunRequests, TerminalMessage, ToEngine } from './protocol';
import { runTrain, type EngineContext } from './train';

if (typeof process.send !== 'function') {
  process.stderr.write('engine/main.js is started by the worker over IPC, not directly\n');
  process.exit(2);
}

function send(m: FromEngine): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.connected) return reject(new Error('IPC channel closed'));
    process.send!(m, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

let ctx: EngineContext | null = null;
let cache: ModelCache | null = null;
let current: CurrentRun | null = null;

interface CurrentRun {
  runId: string;
  abort: AbortController;
  checkpoint: boolean;
}

interface EngineEntry<T extends JobType> {
  run: (
    req: RunRequests[T],
    engine: { ctx: EngineContext; cache: ModelCache; run: CurrentRun },
  ) => Promise<TerminalMessage>;
  /** Whether tensors left after a run are expected (models cached for later runs), not a leak. */
  keepsTensors: boolean;
}

/** How the engine runs each job type (a mapped type, so each entry's request type follows its key). */
const ENTRIES: { [T in JobType]: EngineEntry<T> } = {
  train: {
    run: (req, { ctx, run }) =>
      runTrain(req, ctx, { signal: run.abort.signal, checkpointOnStop: () => run.checkpoint }),
    keepsTensors: false,
  },
  infer: { run: (req, { ctx, cache }) => runInfer(req, ctx, cache), keepsTensors: true },
};

function entryOf<T extends JobType>(kind: T): EngineEntry<T> {
  return ENTRIES[kind];
}

/**
 * The engine reads earlier jobs' artifacts (models, states, checkpoints) through the same store as
 * the worker, resolving published sets through its own Redis connection (opened on first read).
 */
function engineArtifacts(cfg: EngineInit): ArtifactStore {
  const redis = new Redis(cfg.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: null,
    connectionName: `relu-lstm-engine:${process.pid}`,
  });
  redis.on('error', () => undefined); // a read waits through reconnection; the worker reports Redis outages
  return openArtifactStore(cfg.artifactDir, { published: new RedisPublishedSets(redis, redisKeys(cfg.queuePrefix)) });
}

async function init(cfg: EngineInit): Promise<void> {
  try {
    const info = await initBackendFromEnv(cfg.backend);
    const backend = { backend: info.backend, gpu: info.gpu, device: info.device };
    ctx = { artifacts: engineArtifacts(cfg), datasets: openDatasetStore(cfg.datasetDir), backend, send };
    cache = new ModelCache(cfg.modelCacheSize, cfg.modelCacheMb * 2 ** 20);
    await send({ kind: 'ready', backend, pid: process.pid, skipped: [...(info.skipped ?? [])] });
    if (cfg.memoryReportMs !== null) reportMemory(cfg.memoryReportMs);
  } catch (e) {
    await send({ kind: 'fatal', error: toJobError(e) }).catch(() => undefined);
    process.exit(1);
  }
}

/** `tf.memory()` (bookkeeping only: no tensor is read) every `ms`, for the worker's metrics. */
function reportMemory(ms: number): void {
  const report = () => {
    const { numTensors, numBytes } = tf.memory();
    send({ kind: 'memory', numTensors, numBytes }).catch(() => undefined);
  };
  report();
  setInterval(report, ms).unref();
}

async function run(req: RunRequest): Promise<void> {
  if (ctx === null || cache === null) {
    await send({
      kind: 'failed',
      runId: req.runId,
      error: { code: 'internal', message: 'engine not initialised', retryable: true },
    });
    return;
  }
  if (current !== null) {
    await send({
      kind: 'failed',
      runId: req.runId,
      error: { code: 'internal', message: `engine busy with run ${current.runId}`, retryable: true },
    });
    return;
  }
  const run = { runId: req.runId, abort: new AbortController(), checkpoint: false };
  current = run;
  const before = tf.memory().numTensors;
  const entry = entryOf<JobType>(req.kind);
  let result: TerminalMessage;
  try {
    result = await entry.run(req, { ctx, cache, run });
  } catch (e) {
    result = { kind: 'failed', runId: req.runId, error: toJobError(e) };
  } finally {
    current = null;
  }
  // Anything left over by a run that caches nothing is a leak worth a line.
  const leaked = tf.memory().numTensors - before;
  if (!entry.keepsTensors && leaked !== 0) {
    await send({
      kind: 'log',
      runId: req.runId,
      level: 'warning',
      code: 'tensor_leak',
      message: `${leaked} tensors left after the run`,
    }).catch(() => undefined);
  }
  await send(result);
}

process.on('message', (m: ToEngine) => {
  switch (m.kind) {
    case 'init':
      void init(m.init);
      break;
    case 'stop':
      if (current?.runId === m.runId) {
        current.checkpoint = m.checkpoint;
        current.abort.abort();
      }
      break;
    default:
      // A run request, of whichever job type.
      void run(m).catch((e) => {
        process.stderr.write(`engine: could not report run ${m.runId}: ${(e as Error).message}\n`);
        process.exit(1);
      });
      break;
  }
});

// The worker closed the channel (clean shutdown) or died (SIGKILL): never train on without it.
process.on('disconnect', () => process.exit(0));
// SIGINT/SIGTERM reach the whole process group from a terminal or `docker stop`; the worker decides
// when the engine stops (it asks for a checkpoint first), so these are ignored here.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
