/**
 * The worker's side of sweeps (libs/jobs sweeps.ts) for the trials it runs.
 *
 * maxConcurrent: BullMQ flows queue every child at once and limit nothing, so each sweep has a gate,
 * a Redis set of the trial ids holding one of its slots (`keys.sweepRunning`). Before a trial runs,
 * one script admits it when it holds a slot already (a retry, or a trial picked up again after its
 * worker died) or a slot is free; otherwise the consumer puts it back as delayed (BUSY_RETRY_MS, no
 * attempt used), as it does with a job that finds the process busy. A trial gives its slot back when
 * it ends for good (completed, failed, cancelled); an attempt that will be retried keeps it.
 *
 * Each trial that ends appends a `trial` event to the sweep's stream. With `earlyStop`, the metric at
 * the end of epoch K is recorded per trial and the median stopping rule may stop the trial.
 */
import { Injectable, Logger } from '@nestjs/common';
import type { Job } from 'bullmq';
import {
  DEFAULT_STREAM_MAXLEN,
  REPORT_TRIAL_SCRIPT,
  SWEEP_QUEUE,
  TrialEventSchema,
  SweepRecordSchema,
  medianStops,
  trialMetric,
  type JobError,
  type JobState,
  type ProgressEvent,
  type SweepRecord,
  type TrialEvent,
} from '@relu-lstm/jobs';
import { RedisService } from '../redis';

/** KEYS: the gate set. ARGV: trial id, slots. 1: admitted. */
const ENTER = `if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SADD', KEYS[1], ARGV[1])
return 1`;

/** KEYS: the at-K hash. ARGV: trial id, value. Returns the values of the trials recorded before it. */
const RECORD_AT_K = `local before = redis.call('HVALS', KEYS[1])
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return false end
return before`;

type AnyJob = Job<unknown, unknown, string>;

@Injectable()
export class SweepGate {
  private readonly log = new Logger('SweepGate');
  /** Sweep records never change once written: read each once per process (bounded). */
  private readonly records = new Map<string, SweepRecord>();

  constructor(private readonly redis: RedisService) {}

  /** The id of the sweep a job is a trial of, or null. */
  sweepIdOf(job: AnyJob): string | null {
    const p = job.parent;
    return p?.id && p.queueKey === `${this.redis.keys.prefix}:${SWEEP_QUEUE}` ? p.id : null;
  }

  /** Whether the trial may run now (always true for a job that is no trial). */
  async enter(job: AnyJob): Promise<boolean> {
    const sweepId = this.sweepIdOf(job);
    if (!sweepId) return true;
    const record = await this.record(sweepId);
    if (!record) return true;
    const key = this.redis.keys.sweepRunning(sweepId);
    return (await this.redis.connection.eval(ENTER, 1, key, job.id!, String(record.maxConcurrent))) === 1;
  }

  /** The trial ended for good: its slot goes back and the sweep's stream gets a `trial` event. */
  async ended(job: AnyJob, state: JobState, outcome: { result?: unknown; error?: JobError }): Promise<void> {
    const sweepId = this.sweepIdOf(job);
    if (!sweepId) return;
    await this.redis.connection.srem(this.redis.keys.sweepRunning(sweepId), job.id!);
    const record = await this.record(sweepId);
    await this.report(sweepId, {
      type: 'trial',
      at: Date.now(),
      trialId: job.id!,
      state,
      metric: record && state === 'completed' ? trialMetric(outcome.result, record.metric) : null,
      params: record?.trials.find((t) => t.id === job.id)?.params ?? {},
      ...(outcome.error ? { error: outcome.error } : {}),
    });
  }

  /** Appends a trial's `trial` event to the sweep's stream unless it is there already (REPORT_TRIAL_SCRIPT). */
  async report(sweepId: string, event: TrialEvent): Promise<void> {
    const k = this.redis.keys;
    const json = JSON.stringify(TrialEventSchema.parse(event));
    try {
      await this.redis.connection.eval(
        REPORT_TRIAL_SCRIPT,
        2,
        k.sweepReported(sweepId),
        k.events(sweepId),
        event.trialId,
        String(DEFAULT_STREAM_MAXLEN),
        json,
      );
    } catch (e) {
      this.log.warn(`sweep ${sweepId}: could not report trial ${event.trialId}: ${(e as Error).message}`);
    }
  }

  /**
   * At the end of each epoch of a trial: with the sweep's `earlyStop`, records the metric after K
   * epochs and answers whether the median stopping rule stops the trial (its first report counts).
   */
  async stopsAtEpoch(job: AnyJob, point: ProgressEvent): Promise<boolean> {
    const sweepId = this.sweepIdOf(job);
    if (!sweepId || !point.epochEnd) return false;
    const record = await this.record(sweepId);
    const rule = record?.earlyStop;
    if (!rule || point.epoch + 1 !== rule.afterEpochs) return false;
    const value = record.metric === 'valLoss' ? point.valLoss : point.loss;
    if (value === null || !Number.isFinite(value)) return false;
    const key = this.redis.keys.sweepAtK(sweepId);
    const before = (await this.redis.connection.eval(RECORD_AT_K, 1, key, job.id!, String(value))) as string[] | null;
    if (!before) return false;
    return medianStops(value, before.map(Number), rule);
  }

  async record(sweepId: string): Promise<SweepRecord | null> {
    const cached = this.records.get(sweepId);
    if (cached) return cached;
    const raw = await this.redis.connection.get(this.redis.keys.sweep(sweepId));
    const parsed = raw ? SweepRecordSchema.safeParse(JSON.parse(raw)) : null;
    if (!parsed?.success) {
      this.log.warn(`sweep ${sweepId}: no readable record; its trials run ungated`);
      return null;
    }
    if (this.records.size >= 1000) this.records.delete(this.records.keys().next().value!);
    this.records.set(sweepId, parsed.data);
    return parsed.data;
  }
}
