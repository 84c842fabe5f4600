/**
 * Consumes the queues: one BullMQ `Worker` per queue this process serves (`gpu`+`any` on a GPU
 * backend, `cpu`+`any` otherwise, or WORKER_QUEUES less `gpu` on a backend without a hardware GPU:
 * `servedQueues`), each with concurrency 1, sharing one engine.
 *
 * One job at a time per process, across its queues: the engine owns one device and runs one request
 * at a time. A job takes the process's single slot; while it runs, the Workers of the other queues
 * are paused so they fetch nothing. Pausing is not instantaneous (a Worker blocked in its fetch can
 * still take one job as it wakes); a job that finds the slot taken is put back as delayed by
 * BUSY_RETRY_MS (`moveToDelayed` + `DelayedError`: no attempt used) for any free worker to take.
 *
 * Every job's data is parsed with the shared `validateJobData` (under the limits the job carries); a mismatch fails the job at once
 * (`UnrecoverableError`, reason `invalid_payload`) and the worker carries on. The cancel flag of the
 * running job is polled every CANCEL_POLL_MS. Terminal state events (`completed`, `failed`,
 * `cancelled`) are appended from BullMQ's `completed`/`failed` events, i.e. only once BullMQ has
 * recorded the outcome (a worker that lost the job's lock writes none).
 *
 * Watchdogs of the running job, besides the cancel flag: its wall-clock limit (JOB_TIMEOUT_TRAIN_MS
 * / JOB_TIMEOUT_INFER_MS: stop with `timeout`) and its lock. The lock is read at every cancel poll
 * and BullMQ reports a failed renewal (`lockRenewalFailed`); either way a lock that is no longer
 * this attempt's (the process was paused past it and another worker took the job) stops the run
 * with `lost`, and every write of the attempt is refused by the fence (fencing.ts).
 */
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { DelayedError, WaitingError, Worker, type Job } from 'bullmq';
import {
  servedQueues,
  modelSourceOf,
  validateJobData,
  type JobData,
  type JobResult,
  type JobType,
  type QueueName,
} from '@relu-lstm/jobs';
import { withLogFields } from '@relu-lstm/jobs/logging';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { EngineClient } from '../engine/engine-client';
import type { BackendSummary } from '../engine/protocol';
import { RedisService } from '../redis';
import { RetentionService } from '../retention.service';
import { JobFencing } from './fencing';
import { budgetRefusal } from './job-budget';
import { jobErrorOf, jobFailure } from './job-errors';
import { JobEvents } from './job-events';
import { handlersByType, JOB_HANDLERS, LockWatch, StopRequest, type JobContext, type JobHandler } from './job-handler';
import { WORKER_JOB_TYPES } from './job-types';
import { SweepGate } from './sweep-gate';

/** Delay before a job that found this process busy can be fetched again. */
export const BUSY_RETRY_MS = 1000;

type AnyJob = Job<unknown, JobResult, string>;

interface Running {
  job: AnyJob;
  queue: QueueName;
  stop: StopRequest;
  lock: LockWatch;
}

/** The job's data parsed under the limits it carries; a mismatch, or a BullMQ name other than
 * `data.type`, fails the job at once (`invalid_payload`, not retried). */
function jobDataOf(job: AnyJob): JobData {
  const parsed = validateJobData(job.data);
  if (!parsed.ok) {
    const first = parsed.issues
      .slice(0, 3)
      .map((i) => `${i.path || '(data)'}: ${i.message}`)
      .join('; ');
    throw jobFailure({
      code: 'invalid_payload',
      message: `job data does not match the schema: ${first}`,
      details: { issues: parsed.issues },
    });
  }
  const data = parsed.value;
  if (job.name !== data.type) {
    throw jobFailure({
      code: 'invalid_payload',
      message: `job name '${job.name}' differs from data.type '${data.type}'`,
      details: { field: 'type' },
    });
  }
  return data;
}

@Injectable()
export class QueueConsumer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Consumer');
  private readonly handlers: Map<JobType, JobHandler>;
  private readonly workers = new Map<QueueName, Worker<unknown, JobResult, string>>();
  private readonly pending = new Set<Promise<unknown>>();
  private pausing: Promise<unknown> = Promise.resolve();
  private running: Running | null = null;
  private stopping = false;
  private queueList: QueueName[] = [];
  private backendInfo: BackendSummary | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    @Inject(JOB_HANDLERS) handlers: JobHandler[],
    private readonly redis: RedisService,
    private readonly engine: EngineClient,
    private readonly events: JobEvents,
    private readonly fencing: JobFencing,
    private readonly retention: RetentionService,
    private readonly sweeps: SweepGate,
  ) {
    this.handlers = handlersByType(handlers);
  }

  get queues(): readonly QueueName[] {
    return this.queueList;
  }

  get backend(): BackendSummary | null {
    return this.backendInfo;
  }

  get currentJobId(): string | null {
    return this.running?.job.id ?? null;
  }

  /** `servedQueues`: what WORKER_QUEUES names that this backend cannot serve is left out, and said once. */
  private chooseQueues(backend: BackendSummary): QueueName[] {
    const { queues, refused } = servedQueues(this.config.queues, backend);
    for (const r of refused) {
      this.log.warn(
        `WORKER_QUEUES names ${r.queue}, but the backend ${backend.backend} (device ${backend.device}) is not a ` +
          `${r.needs}: leaving the ${r.queue} queue to workers that have one (its jobs wait for them); serving ${queues.join(', ')}`,
      );
    }
    return queues;
  }

  async onApplicationBootstrap(): Promise<void> {
    this.backendInfo = await this.engine.start();
    this.queueList = this.chooseQueues(this.backendInfo);
    for (const queue of this.queueList) {
      const worker = new Worker<unknown, JobResult, string>(queue, (job, token) => this.process(queue, job, token!), {
        connection: this.redis.connection,
        prefix: this.config.queuePrefix,
        concurrency: 1,
        name: this.config.workerId,
        lockDuration: this.config.lock.durationMs,
        stalledInterval: this.config.lock.stalledIntervalMs,
        maxStalledCount: this.config.lock.maxStalledCount,
        autorun: false,
      });
      worker.on('error', (err) => this.log.warn(`queue ${queue}: ${err.message}`));
      worker.on('lockRenewalFailed', (jobIds: string[]) => {
        const r = this.running;
        if (r && jobIds.includes(r.job.id!)) r.lock.markLost();
      });
      worker.on('completed', (job, result) =>
        this.inJobContext(job, job.attemptsMade, () => this.track(this.onCompleted(job, result))),
      );
      worker.on('failed', (job, err) =>
        this.inJobContext(job, job?.attemptsMade ?? 0, () => this.track(this.onFailed(job, err))),
      );
      worker.on('stalled', (jobId) =>
        withLogFields({ jobId, workerId: this.config.workerId }, () =>
          this.track(
            this.events.info(
              jobId,
              'stalled',
              `the job's lock lapsed; moved back to ${queue} by worker ${this.config.workerId}'s stalled check`,
              undefined,
              'warning',
            ),
          ),
        ),
      );
      this.workers.set(queue, worker);
    }
    for (const w of this.workers.values())
      void w.run().catch((e) => this.log.error(`worker run: ${(e as Error).message}`));
    await Promise.all([...this.workers.values()].map((w) => w.waitUntilReady()));
    const lock = this.config.lock;
    this.log.log(
      `worker ${this.config.workerId} consuming ${this.queueList.join(', ')} (prefix ${this.config.queuePrefix}; ` +
        `lockDuration ${lock.durationMs} ms, stalledInterval ${lock.stalledIntervalMs} ms, maxStalledCount ${lock.maxStalledCount})`,
    );
  }

  /** Runs `fn` with the job's id, attempt and this worker's id on every line it logs. */
  private inJobContext<T>(job: AnyJob | undefined, attempt: number, fn: () => T): T {
    if (!job?.id) return fn();
    return withLogFields({ jobId: job.id, attempt, workerId: this.config.workerId }, fn);
  }

  private process(queue: QueueName, job: AnyJob, token: string): Promise<JobResult> {
    return this.inJobContext(job, job.attemptsMade + 1, () => this.processInContext(queue, job, token));
  }

  private async processInContext(queue: QueueName, job: AnyJob, token: string): Promise<JobResult> {
    await this.deferIfUnavailable(job, token);
    const stop = new StopRequest();
    const lock = this.watchLock(job, token, stop);
    this.running = { job, queue, stop, lock };
    this.pauseOthers(queue);
    try {
      await this.deferIfGated(job, token);
      const data = jobDataOf(job);
      await this.refuseBeforeStart(job.id!, data);
      return await this.runHandler({ job, token, data, stop, lock });
    } finally {
      this.running = null;
      if (!this.stopping) this.resumeOthers();
    }
  }

  /** Hands the job back without using an attempt: to the wait list when this process is closing,
   * delayed when its single slot is taken (see the header). Throws BullMQ's marker error either way. */
  private async deferIfUnavailable(job: AnyJob, token: string): Promise<void> {
    if (this.stopping) {
      await job.moveToWait(token);
      throw new WaitingError();
    }
    if (this.running !== null) {
      await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
      throw new DelayedError();
    }
  }

  /** A sweep trial whose sweep has `maxConcurrent` trials running waits, delayed (sweep-gate.ts). */
  private async deferIfGated(job: AnyJob, token: string): Promise<void> {
    if (await this.sweeps.enter(job)) return;
    await job.moveToDelayed(Date.now() + BUSY_RETRY_MS, token);
    throw new DelayedError();
  }

  /** This attempt's lock, whose loss stops the run with `lost`. */
  private watchLock(job: AnyJob, token: string, stop: StopRequest): LockWatch {
    // Fresh for a quarter of the lock's life: BullMQ renews it every half, so a confirmed lock has
    // at least that long left.
    return new LockWatch(
      () => this.fencing.holds(job, token),
      this.config.lock.durationMs / 4,
      () => {
        this.log.warn(
          `job ${job.id}: lost its lock (it is no longer this attempt's); stopping the run, writing nothing`,
        );
        stop.request('lost');
      },
    );
  }

  /** Fails the job, without running it, when it was cancelled while queued or exceeds the memory budget. */
  private async refuseBeforeStart(jobId: string, data: JobData): Promise<void> {
    if (await this.cancelRequested(jobId))
      throw jobFailure({ code: 'cancelled', message: 'cancelled before it started' });
    const refusal = budgetRefusal(data, this.config.memory.maxJobMb);
    if (refusal) throw jobFailure(refusal);
  }

  /** Marks the job running and runs its handler under the watchdogs; they end with the run. */
  private async runHandler(o: {
    job: AnyJob;
    token: string;
    data: JobData;
    stop: StopRequest;
    lock: LockWatch;
  }): Promise<JobResult> {
    const { job, data, stop, lock } = o;
    const jobId = job.id!;
    const timeoutMs = WORKER_JOB_TYPES[data.type].timeoutMs(this.config);
    const stopWatchdogs = this.startWatchdogs({ jobId, stop, lock, timeoutMs });
    try {
      const attempt = job.attemptsMade + 1;
      await this.events.state(jobId, 'running', { attempt, workerId: this.config.workerId });
      this.log.log(`job ${jobId} (${data.type}) running, attempt ${attempt}`);
      const ctx = {
        job,
        token: o.token,
        jobId,
        tenant: data.tenant,
        payload: data.payload,
        labels: { name: data.name, tags: data.tags },
        modelSource: modelSourceOf(data),
        attempt,
        stop,
        timeoutMs,
        lock,
      };
      return await this.handlers.get(data.type)!.run(ctx as JobContext);
    } finally {
      stopWatchdogs();
    }
  }

  /** Polls the cancel flag and the lock every CANCEL_POLL_MS, and stops the run with `timeout` once
   * its wall-clock limit passes. Returns the function that clears both timers. */
  private startWatchdogs(o: { jobId: string; stop: StopRequest; lock: LockWatch; timeoutMs: number }): () => void {
    const { jobId, stop, lock, timeoutMs } = o;
    const poll = setInterval(() => {
      this.cancelRequested(jobId).then(
        (yes) => yes && stop.request('cancel'),
        () => undefined,
      );
      lock.refresh().catch(() => undefined);
    }, this.config.cancelPollMs);
    const limit = setTimeout(() => {
      this.log.warn(`job ${jobId} ran longer than its ${timeoutMs} ms limit; stopping it`);
      stop.request('timeout');
    }, timeoutMs);
    return () => {
      clearInterval(poll);
      clearTimeout(limit);
    };
  }

  private async cancelRequested(jobId: string): Promise<boolean> {
    return (await this.redis.connection.exists(this.redis.keys.cancel(jobId))) === 1;
  }

  private pauseOthers(queue: QueueName): void {
    const others = [...this.workers].filter(([q]) => q !== queue).map(([, w]) => w);
    this.pausing = Promise.all(others.map((w) => w.pause().catch(() => undefined)));
  }

  private resumeOthers(): void {
    const others = [...this.workers.values()];
    this.pausing = this.pausing.then(() => Promise.all(others.filter((w) => w.isPaused()).map((w) => w.resume())));
  }

  private async onCompleted(job: AnyJob, result: JobResult): Promise<void> {
    // The records' TTL is set even if the event could not be appended: a finished job left without
    // one would never expire, and the sweeper leaves a meta without TTL alone (it may be running).
    this.log.log(`job ${job.id} completed in ${ranFor(job)}`);
    try {
      await this.events.state(job.id!, 'completed', { result });
      await this.sweeps.ended(job, 'completed', { result });
    } finally {
      await this.retention.finished(job, 'completed');
    }
  }

  private async onFailed(job: AnyJob | undefined, err: Error): Promise<void> {
    if (!job?.id) return;
    const error = jobErrorOf(err);
    const final = err.name === 'UnrecoverableError' || Boolean(job.finishedOn);
    // The code only: an error's message may quote what the payload held.
    this.log.log(`job ${job.id} attempt ${job.attemptsMade} ${final ? 'ended' : 'failed, will retry'}: ${error.code}`);
    if (!final) {
      await this.events.info(
        job.id,
        'attempt_failed',
        `attempt ${job.attemptsMade} failed, will retry: ${error.message}`,
        { error, attemptsMade: job.attemptsMade },
        'warning',
      );
      return;
    }
    const state = error.code === 'cancelled' ? 'cancelled' : 'failed';
    try {
      await this.events.state(job.id, state, { error });
      await this.sweeps.ended(job, state, { error });
    } finally {
      await this.retention.finished(job, 'failed');
    }
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch((e) => this.log.warn((e as Error).message));
    this.pending.add(q);
    void q.finally(() => this.pending.delete(q));
  }

  /**
   * SIGTERM/SIGINT: stop taking jobs; ask a running training to checkpoint and release its job
   * (SHUTDOWN_GRACE_MS), then close the Workers and the engine. A job not released in time keeps
   * its lock until it lapses; another worker then resumes it from its last checkpoint.
   */
  async beforeApplicationShutdown(signal?: string): Promise<void> {
    this.stopping = true;
    const running = this.running?.job;
    this.inJobContext(running, (running?.attemptsMade ?? 0) + 1, () =>
      this.log.log(`shutting down${signal ? ` on ${signal}` : ''}${running ? `; stopping job ${running.id}` : ''}`),
    );
    const workers = [...this.workers.values()];
    for (const w of workers) void w.pause(true).catch(() => undefined);
    this.running?.stop.request('shutdown');
    const closing = Promise.all(
      workers.map((w) => w.close().catch((e) => this.log.warn(`close: ${(e as Error).message}`))),
    );
    const graceful = await Promise.race([
      closing.then(() => true),
      sleep(this.config.shutdownGraceMs).then(() => false),
    ]);
    if (!graceful) {
      this.log.warn(
        `job ${this.currentJobId} did not stop within ${this.config.shutdownGraceMs} ms; killing the engine`,
      );
      this.engine.kill();
      await Promise.race([closing, sleep(5000)]);
      await Promise.race([Promise.all(workers.map((w) => w.close(true).catch(() => undefined))), sleep(5000)]);
    }
    await this.engine.close();
    await Promise.all([...this.pending]);
  }
}

/** The last attempt's run time, for the log. */
function ranFor(job: AnyJob): string {
  return job.processedOn && job.finishedOn ? `${job.finishedOn - job.processedOn} ms` : 'an unknown time';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
