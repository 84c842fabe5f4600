/**
 * Ends sweeps: every worker process consumes the `sweeps` queue (SWEEP_QUEUE) with a small BullMQ
 * Worker of its own, outside the single engine slot (no tensor work happens here). BullMQ hands it
 * a sweep's parent job once every trial has ended (each child completed, or failed and ignored);
 * the run ranks the trials from BullMQ's record of its children, appends the sweep's terminal
 * state event (`completed`, or `cancelled` when the sweep was cancelled) and returns the ranking.
 */
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { Worker, type Job } from 'bullmq';
import {
  SWEEP_QUEUE,
  decodeJobError,
  rankTrials,
  type JobState,
  type SweepJobData,
  type TrialOutcome,
  type TrialView,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { RedisService } from '../redis';
import { JobEvents } from './job-events';
import { SweepGate } from './sweep-gate';

/** Sweeps one process finishes at once (each is a few Redis reads). */
const FINISH_CONCURRENCY = 4;

export interface SweepResult {
  state: 'completed' | 'cancelled';
  trials: TrialView[];
}

@Injectable()
export class SweepFinisher implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('SweepFinisher');
  private worker: Worker<SweepJobData, SweepResult> | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: RedisService,
    private readonly events: JobEvents,
    private readonly gate: SweepGate,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<SweepJobData, SweepResult>(SWEEP_QUEUE, (job) => this.finish(job), {
      connection: this.redis.connection,
      prefix: this.config.queuePrefix,
      concurrency: FINISH_CONCURRENCY,
      name: this.config.workerId,
    });
    this.worker.on('error', (err) => this.log.warn(`queue ${SWEEP_QUEUE}: ${err.message}`));
    await this.worker.waitUntilReady();
  }

  async finish(job: Job<SweepJobData, SweepResult>): Promise<SweepResult> {
    const { sweepId } = job.data;
    const record = await this.gate.record(sweepId);
    if (!record) throw new Error(`sweep ${sweepId} has no record`);
    const [values, failures, cancelled] = await Promise.all([
      job.getChildrenValues(),
      job.getIgnoredChildrenFailures(),
      this.redis.connection.exists(this.redis.keys.cancel(sweepId)),
    ]);
    const byId = (o: Record<string, unknown>) => new Map(Object.entries(o).map(([k, v]) => [k.split(':').pop()!, v]));
    const done = byId(values);
    const failed = byId(failures);
    const trials: TrialOutcome[] = record.trials.map((t) => {
      if (done.has(t.id)) return { ...t, state: 'completed', result: done.get(t.id) };
      // Not a child any more: removed from its queue by a cancel before it started.
      const error = failed.has(t.id)
        ? decodeJobError(String(failed.get(t.id)))
        : { code: 'cancelled' as const, message: 'cancelled before it started', retryable: false };
      const state: JobState = error.code === 'cancelled' ? 'cancelled' : 'failed';
      return { ...t, state, error };
    });
    const ranked = rankTrials(trials, record.metric);
    // A trial whose worker has not reported it yet (it reports after BullMQ recorded the end that
    // let this run start) is reported here, so that every `trial` event comes before the end.
    for (const t of ranked) {
      const { id, state, metric, params, error } = t;
      await this.gate.report(sweepId, {
        type: 'trial',
        at: Date.now(),
        trialId: id,
        state,
        metric,
        params,
        ...(error ? { error } : {}),
      });
    }
    const result: SweepResult = { state: cancelled ? 'cancelled' : 'completed', trials: ranked };
    await this.events.state(sweepId, result.state);
    await this.expire(sweepId);
    return result;
  }

  /** The sweep's own keys follow its record's lifetime from here. */
  private async expire(sweepId: string): Promise<void> {
    const k = this.redis.keys;
    const ttl = await this.redis.connection.ttl(k.sweep(sweepId));
    const sec = ttl > 0 ? ttl : 24 * 3600;
    await this.redis.connection
      .multi()
      .expire(k.events(sweepId), sec)
      .expire(k.cancel(sweepId), sec)
      .expire(k.sweepReported(sweepId), sec)
      .del(k.sweepRunning(sweepId), k.sweepAtK(sweepId))
      .exec();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker?.close().catch((e) => this.log.warn(`close: ${(e as Error).message}`));
  }
}
