/**
 * The api's Prometheus metrics (GET /metrics, prom-client), one registry per api instance. Named by
 * Prometheus conventions: `relu_lstm_` prefix, base units in the name (`_seconds`, `_bytes`),
 * counters ending in `_total`. Three kinds of source:
 *   - this process, as requests pass (request counts and latencies by route template and status,
 *     open event streams, the background Redis PING);
 *   - BullMQ's queue events (jobs finished by type and outcome, their run time): every api instance
 *     sees every job, so across several instances take one (`max by`), not the sum;
 *   - Redis, read when scraped (queue depths, live workers, the running jobs' last metric point).
 * Label values come from closed sets (route templates, queue names, states, job types) except the
 * per-job gauges, which hold only the jobs running now (at most one per live worker).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import {
  QUEUE_NAMES,
  decodeJobError,
  type JobEventStream,
  type JobType,
  type QueueName,
  type RedisKeys,
  type WorkerHeartbeat,
} from '@relu-lstm/jobs';
import type { Redis } from 'ioredis';

/** Prefix of every metric name. */
export const METRIC_PREFIX = 'relu_lstm_';

/** BullMQ job states reported as queue depth. */
export const QUEUE_DEPTH_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const;

export type JobOutcome = 'completed' | 'failed' | 'cancelled';

/** Latency buckets (seconds) of api requests: a status read is ~1 ms, an upload or a wait seconds. */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Job run times (seconds): a tiny inference to an hour of training. */
const JOB_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];
/** Redis PING round trips (seconds). */
const PING_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

/** Metric events searched back from the end of a running job's stream for its last point. */
const LAST_EVENTS = 20;

/** What the scrape-time gauges read: wired by MetricsModule from the api's shared instances. */
export interface ScrapeSources {
  redis: Redis;
  keys: RedisKeys;
  events: JobEventStream;
  queueCounts(queue: QueueName): Promise<Record<string, number>>;
  liveWorkers(): Promise<WorkerHeartbeat[]>;
}

export class ApiMetrics {
  readonly registry = new Registry();
  private sources: ScrapeSources | null = null;

  readonly requests = new Counter({
    name: `${METRIC_PREFIX}api_requests_total`,
    help: 'HTTP requests answered, by method, route template (`unmatched` for paths no route has) and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: `${METRIC_PREFIX}api_request_duration_seconds`,
    help: 'Time from the request to the end of its answer (an event stream: until it closes)',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });

  readonly eventStreams = new Gauge({
    name: `${METRIC_PREFIX}api_event_streams`,
    help: 'Server-Sent Events connections open (GET /v1/jobs/:id/events)',
    registers: [this.registry],
  });

  readonly redisPing = new Histogram({
    name: `${METRIC_PREFIX}redis_ping_duration_seconds`,
    help: "Round trip of the api's background Redis PING (the probe behind /health and /ready)",
    buckets: PING_BUCKETS,
    registers: [this.registry],
  });

  readonly jobsFinished = new Counter({
    name: `${METRIC_PREFIX}jobs_finished_total`,
    help: 'Jobs that reached a final state, by type and outcome (from BullMQ queue events; each api instance counts every job)',
    labelNames: ['type', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly jobDuration = new Histogram({
    name: `${METRIC_PREFIX}job_duration_seconds`,
    help: 'Run time of the final attempt of finished jobs (BullMQ processedOn to finishedOn), by type and outcome',
    labelNames: ['type', 'outcome'] as const,
    buckets: JOB_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: `${METRIC_PREFIX}api_` });
    this.scrapeGauges();
  }

  /** Connects the gauges read at scrape time; before, they report nothing. */
  attach(sources: ScrapeSources): void {
    this.sources = sources;
  }

  /** One finished job, from a BullMQ `completed` / `failed` event and the job's hash. */
  jobFinished(o: {
    type: JobType;
    failedReason: string | null;
    processedOn: number | null;
    finishedOn: number | null;
  }) {
    const outcome: JobOutcome =
      o.failedReason === null
        ? 'completed'
        : decodeJobError(o.failedReason).code === 'cancelled'
          ? 'cancelled'
          : 'failed';
    this.jobsFinished.inc({ type: o.type, outcome });
    if (o.processedOn !== null && o.finishedOn !== null && o.finishedOn >= o.processedOn) {
      this.jobDuration.observe({ type: o.type, outcome }, (o.finishedOn - o.processedOn) / 1000);
    }
  }

  /**
   * A scrape-time read; null before `attach` or when Redis fails (the gauge is then left out and
   * counted in `scrape_errors_total`, so one outage does not fail the whole scrape).
   */
  private async read<T>(fn: (sources: ScrapeSources) => Promise<T>): Promise<T | null> {
    if (!this.sources) return null;
    try {
      return await fn(this.sources);
    } catch {
      this.scrapeErrors.inc();
      return null;
    }
  }

  private readonly scrapeErrors = new Counter({
    name: `${METRIC_PREFIX}api_scrape_errors_total`,
    help: 'Reads from Redis that failed during a scrape (the gauge they feed was left out)',
    registers: [this.registry],
  });

  private scrapeGauges(): void {
    const read = <T>(fn: (sources: ScrapeSources) => Promise<T>) => this.read(fn);
    new Gauge({
      name: `${METRIC_PREFIX}queue_jobs`,
      help: 'Jobs in each BullMQ queue by state (completed and failed: those still kept)',
      labelNames: ['queue', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        const counts = await read((src) => Promise.all(QUEUE_NAMES.map((q) => src.queueCounts(q))));
        if (!counts) return;
        QUEUE_NAMES.forEach((queue, i) => {
          for (const state of QUEUE_DEPTH_STATES) this.set({ queue, state }, counts[i][state] ?? 0);
        });
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}workers`,
      help: 'Live workers (unexpired heartbeats) by backend and whether it is a GPU',
      labelNames: ['backend', 'gpu'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const w of (await read((src) => src.liveWorkers())) ?? [])
          this.inc({ backend: w.backend, gpu: String(w.gpu) });
      },
    });
  }

  /** Samples/s and loss of each running job: set by `scrape` before the registry is read. */
  private readonly samplesPerSecond = new Gauge({
    name: `${METRIC_PREFIX}job_samples_per_second`,
    help: "Training throughput at the running job's last metric point",
    labelNames: ['job_id', 'worker_id'] as const,
    registers: [this.registry],
  });

  private readonly loss = new Gauge({
    name: `${METRIC_PREFIX}job_loss`,
    help: "Training loss at the running job's last metric point",
    labelNames: ['job_id', 'worker_id'] as const,
    registers: [this.registry],
  });

  /** The text of GET /metrics. */
  async scrape(): Promise<string> {
    await this.readRunningJobs();
    return this.registry.metrics();
  }

  /** Each running job's last metric event, found from the workers' current jobs (one gauge feeds two). */
  private async readRunningJobs(): Promise<void> {
    const running = ((await this.read((src) => src.liveWorkers())) ?? []).filter((w) => w.currentJobId);
    const points = await Promise.all(
      running.map(async (w) => {
        const events = await this.read((src) => src.events.last(w.currentJobId!, LAST_EVENTS));
        const last = events?.find((e) => e.event.type === 'metric')?.event;
        return last?.type === 'metric' ? { labels: { job_id: w.currentJobId!, worker_id: w.id }, last } : null;
      }),
    );
    this.samplesPerSecond.reset();
    this.loss.reset();
    for (const p of points) {
      if (!p) continue;
      this.samplesPerSecond.set(p.labels, p.last.samplesPerSec);
      this.loss.set(p.labels, p.last.loss);
    }
  }
}
