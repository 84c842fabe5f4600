/**
 * Parent side of the engine (see protocol.ts): forks `engine/main.js`, waits for its backend, sends
 * one run at a time and hands every message of the run to the caller. If the engine dies, the run in
 * flight fails with `EngineCrashedError` and the next run forks a new engine.
 */
import { AsyncResource } from 'node:async_hooks';
import { fork, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import * as path from 'node:path';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { logFields, withLogFields, type LogFields } from '@relu-lstm/jobs/logging';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { EngineOutOfMemoryError, engineHeapFlags, exitedOfHeapLimit, watchResidentSet } from './memory-watchdog';
import {
  isTerminal,
  type BackendSummary,
  type EngineMemory,
  type FromEngine,
  type RunMessage,
  type RunRequest,
  type TerminalMessage,
  type ToEngine,
} from './protocol';

export class EngineCrashedError extends Error {
  constructor(readonly exit: string) {
    super(`the engine process exited (${exit}) during the run`);
    this.name = 'EngineCrashedError';
  }
}

export class EngineStartError extends Error {
  constructor(
    message: string,
    readonly code: string = 'internal',
  ) {
    super(message);
    this.name = 'EngineStartError';
  }
}

/** How often the engine reports its tensors while the worker serves metrics. */
const ENGINE_MEMORY_REPORT_MS = 1000;

interface InFlight {
  runId: string;
  /** The job's log fields (id, attempt, worker), for the engine's own output during the run. */
  logFields: LogFields | undefined;
  onMessage: (m: RunMessage) => void;
  resolve: (m: TerminalMessage) => void;
  reject: (e: Error) => void;
}

@Injectable()
export class EngineClient {
  private readonly log = new Logger('Engine');
  private child: ChildProcess | null = null;
  private starting: Promise<BackendSummary> | null = null;
  private backendInfo: BackendSummary | null = null;
  private inFlight: InFlight | null = null;
  private readonly earlyStops = new Map<string, boolean>();
  private readonly earlyKills = new Set<string>();
  private waiting: { runId: string; reject: (e: Error) => void } | null = null;
  private closing = false;
  private lastMemory: EngineMemory | null = null;

  constructor(@Inject(WORKER_CONFIG) private readonly config: WorkerConfig) {}

  /** The engine's last `memory` report (only sent with METRICS_PORT set); null without an engine. */
  get memory(): EngineMemory | null {
    return this.child ? this.lastMemory : null;
  }

  /** What the engine runs on; null before the first start. */
  get backend(): BackendSummary | null {
    return this.backendInfo;
  }

  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Forks the engine if none is running and waits for its backend. */
  start(): Promise<BackendSummary> {
    if (this.closing) return Promise.reject(new EngineStartError('the worker is shutting down'));
    if (this.child !== null && this.starting === null && this.backendInfo !== null)
      return Promise.resolve(this.backendInfo);
    this.starting ??= this.spawn().finally(() => {
      this.starting = null;
    });
    return this.starting;
  }

  private spawn(): Promise<BackendSummary> {
    return new Promise<BackendSummary>((resolve, reject) => {
      const child = fork(path.join(__dirname, 'main.js'), [], {
        serialization: 'advanced',
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        execArgv: [
          ...process.execArgv.filter((a) => !a.startsWith('--inspect') && !a.startsWith('--max-old-space-size')),
          ...engineHeapFlags(this.config.memory.maxJobMb),
        ],
      });
      this.child = child;
      this.relayOutput(child);
      let outOfMemory: EngineOutOfMemoryError | null = null;
      const unwatch = watchResidentSet({
        pid: child.pid!,
        limitMb: this.config.memory.maxJobMb,
        pollMs: this.config.memory.pollMs,
        onExceeded: (rss) => {
          outOfMemory = new EngineOutOfMemoryError('resident set', this.config.memory.maxJobMb, rss);
          this.log.warn(`engine pid ${child.pid}: ${outOfMemory.message}`);
          child.kill('SIGKILL');
        },
      });
      let ready = false;
      const timer = setTimeout(() => {
        if (ready) return;
        child.kill('SIGKILL');
        reject(
          new EngineStartError(
            `the engine did not initialise its backend within ${this.config.engineStartTimeoutMs} ms`,
          ),
        );
      }, this.config.engineStartTimeoutMs);
      child.on('message', (m: FromEngine) => {
        if (m.kind === 'ready') {
          ready = true;
          clearTimeout(timer);
          this.backendInfo = m.backend;
          this.log.log(
            `engine pid ${m.pid} ready: backend ${m.backend.backend}${m.backend.gpu ? ' (GPU)' : ''}, ${m.backend.device}`,
          );
          if (m.skipped.length) this.log.log(`backend 'auto' passed over: ${m.skipped.join('; ')}`);
          resolve(m.backend);
        } else if (m.kind === 'memory') {
          this.lastMemory = { numTensors: m.numTensors, numBytes: m.numBytes };
        } else if (m.kind === 'fatal') {
          clearTimeout(timer);
          reject(new EngineStartError(`the engine could not start: ${m.error.message}`, m.error.code));
        } else {
          this.dispatch(m);
        }
      });
      child.on('error', (err) => this.log.error(`engine process error: ${err.message}`));
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        unwatch();
        if (!outOfMemory && exitedOfHeapLimit(signal, code))
          outOfMemory = new EngineOutOfMemoryError('V8 heap', this.config.memory.maxJobMb, null);
        if (this.child === child) this.child = null;
        const how = signal ?? `code ${code}`;
        if (!ready) reject(new EngineStartError(`the engine exited (${how}) before it was ready`));
        else if (!this.closing) this.log.warn(`engine pid ${child.pid} exited (${how})`);
        const run = this.inFlight;
        if (run) {
          this.inFlight = null;
          run.reject(outOfMemory ?? new EngineCrashedError(how));
        }
      });
      this.post({
        kind: 'init',
        init: {
          artifactDir: this.config.artifactDir,
          redisUrl: this.config.redisUrl,
          queuePrefix: this.config.queuePrefix,
          datasetDir: this.config.datasetDir,
          backend: this.config.backend,
          modelCacheSize: this.config.modelCacheSize,
          modelCacheMb: this.config.modelCacheMb,
          memoryReportMs: this.config.metrics ? ENGINE_MEMORY_REPORT_MS : null,
        },
      });
    });
  }

  /**
   * Runs one request; `onMessage` gets every non-terminal message of it (started, progress,
   * checkpoint, log) in order. Resolves with the terminal message; rejects if the engine dies.
   */
  async run(req: RunRequest, onMessage: (m: RunMessage) => void): Promise<TerminalMessage> {
    if (this.inFlight) throw new Error(`engine busy with run ${this.inFlight.runId}`);
    // Killed before it was sent (a cancel while the engine is still starting): never send it.
    const killedEarly = new Promise<never>((_, reject) => {
      this.waiting = { runId: req.runId, reject };
      if (this.earlyKills.has(req.runId)) reject(new EngineCrashedError('stopped before the run was sent'));
    });
    try {
      await Promise.race([this.start(), killedEarly]);
    } finally {
      this.waiting = null;
      this.earlyKills.clear();
    }
    if (!this.child?.connected) throw new EngineCrashedError('not connected');
    return new Promise<TerminalMessage>((resolve, reject) => {
      // Messages arrive from the child's IPC channel: bound here, so what they log carries the job's fields.
      this.inFlight = {
        runId: req.runId,
        logFields: logFields(),
        onMessage: AsyncResource.bind(onMessage),
        resolve,
        reject,
      };
      this.post(req);
      // A stop asked for while the engine was still starting follows the request at once.
      const early = this.earlyStops.get(req.runId);
      this.earlyStops.clear();
      if (early !== undefined) this.post({ kind: 'stop', runId: req.runId, checkpoint: early });
    });
  }

  /**
   * Asks the run to stop at its next batch boundary (with a checkpoint first when `checkpoint`). A
   * stop for a run not yet sent (the engine is still starting) is sent right after its request.
   */
  stop(runId: string, checkpoint: boolean): void {
    if (this.inFlight?.runId === runId) this.post({ kind: 'stop', runId, checkpoint });
    else this.earlyStops.set(runId, checkpoint);
  }

  /** Kills the engine at once (a hung run); the run in flight fails with EngineCrashedError. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /**
   * Kills the engine if run `runId` is in flight (it did not stop when asked); a run not sent yet
   * (the engine is still starting) is not sent at all.
   */
  killRun(runId: string): void {
    if (this.inFlight?.runId !== runId) {
      if (this.waiting?.runId === runId) this.waiting.reject(new EngineCrashedError('stopped before the run was sent'));
      else this.earlyKills.add(runId);
      return;
    }
    this.log.warn(`run ${runId} did not stop when asked; killing the engine`);
    this.kill();
  }

  /** Closes the IPC channel (the engine exits on it) and waits up to `timeoutMs` before SIGKILL. */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    if (child.connected) child.disconnect();
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /**
   * What the engine prints (tfjs's notices, a crash's stack) goes through this process's logger, a
   * line at a time, so the log stays one format (JSON lines or text), with the running job's fields.
   */
  private relayOutput(child: ChildProcess): void {
    const relay = (line: string, level: 'log' | 'warn') => {
      if (!line) return;
      withLogFields(this.inFlight?.logFields ?? {}, () => this.log[level](`engine: ${line}`));
    };
    createInterface({ input: child.stdout! }).on('line', (line) => relay(line, 'log'));
    createInterface({ input: child.stderr! }).on('line', (line) => relay(line, 'warn'));
  }

  private dispatch(m: FromEngine): void {
    if (m.kind === 'ready' || m.kind === 'fatal' || m.kind === 'memory') return;
    const run = this.inFlight;
    if (!run || m.runId !== run.runId) {
      this.log.warn(`dropped a '${m.kind}' message of run ${m.runId}, which is not in flight`);
      return;
    }
    if (isTerminal(m)) {
      this.inFlight = null;
      run.resolve(m);
      return;
    }
    try {
      run.onMessage(m);
    } catch (e) {
      this.log.error(`handler of '${m.kind}' threw: ${(e as Error).message}`);
    }
  }

  private post(m: ToEngine): void {
    if (!this.child?.connected) {
      this.log.warn(`engine not connected; '${m.kind}' not sent`);
      return;
    }
    this.child.send(m);
  }
}
