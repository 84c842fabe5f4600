/**
 * `QueueClient`: a typed producer for programs inside the cluster. It validates a payload with the
 * shared schemas, plans the job with `planJob` (queue by device, random UUID id, attempts and
 * retention) and records and queues it with `produceJob`, both from `@relu-lstm/jobs`, so a job put
 * here is indistinguishable from one submitted over REST: the api lists it, streams its events and
 * serves its artifacts. It can also follow a job's events straight from Redis.
 */
import {
  contract as defaultContract,
  DEFAULT_QUEUE_PREFIX,
  isTerminal,
  JOB_TYPE_SPECS,
  JobOptionsSchema,
  payloadSchema,
  planJob,
  isResolved,
  modelRefOf,
  modelRefProblemMessage,
  resolveModelRef,
  MODEL_REF_EXPECTED,
  type ModelVersionRef,
  produceJob,
  redisKeys,
  RedisJobEventStream,
  validate,
  type InferPayloadInput,
  type JobContract,
  type JobOptionsInput,
  type JobData,
  type JobPolicy,
  type JobResult,
  type JobType,
  type PayloadOf,
  type ProducedJob,
  type QueueName,
  type RedisKeys,
  type StoredEvent,
  type TrainPayloadInput,
} from '@relu-lstm/jobs';
import { Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { JobFailedError, PayloadValidationError, WaitTimeoutError } from './errors';

export interface QueueClientOptions {
  /** A Redis URL (`redis://:password@host:6379/0`) or ioredis options. */
  connection: string | RedisOptions;
  /** Queue prefix (`QUEUE_PREFIX` of the api and the workers). Default `relu-lstm`. */
  prefix?: string;
  /**
   * Tenant the jobs belong to: with API keys, the tenant whose key would submit them through the
   * api (only that tenant sees them there); without keys, `default`. Required: a direct producer
   * bypasses the api's authentication, so it must say whose jobs these are.
   */
  tenant: string;
  /** Attempts, backoff and retention; default `DEFAULT_JOB_POLICY`, as the api's default. */
  policy?: JobPolicy;
  /** Schemas to validate with; default `contract`. */
  contract?: JobContract;
}

export interface QueueSubmitOptions extends JobOptionsInput {
  /** Job id; default a random UUID. An id in use fails with `JobIdConflictError`. */
  id?: string;
}

export interface QueueFollowOptions {
  /** Resume after this event id (exclusive); default from the start. */
  lastEventId?: string;
  signal?: AbortSignal;
}

export class QueueClient {
  readonly prefix: string;
  readonly tenant: string;
  readonly keys: RedisKeys;
  private readonly redis: Redis;
  private readonly queues = new Map<QueueName, Queue<JobData>>();
  private readonly events: RedisJobEventStream;
  private readonly policy: JobPolicy | undefined;
  private readonly contract: JobContract;
  private closing: Promise<void> | null = null;

  constructor(options: QueueClientOptions) {
    this.prefix = options.prefix ?? DEFAULT_QUEUE_PREFIX;
    this.keys = redisKeys(this.prefix); // validates the prefix
    this.tenant = options.tenant;
    this.keys.jobIndex(this.tenant); // validates the tenant
    this.policy = options.policy;
    this.contract = options.contract ?? defaultContract;
    // BullMQ takes an existing connection as shared: its queues never close it, close() does.
    this.redis = typeof options.connection === 'string' ? new Redis(options.connection) : new Redis(options.connection);
    this.redis.on('error', () => {}); // surfaced by the commands that fail; ioredis reconnects
    this.events = new RedisJobEventStream(this.redis, this.keys);
  }

  /** Validates and queues a train job. Throws `PayloadValidationError` (nothing is written) on a bad payload. */
  submitTrain(payload: TrainPayloadInput, options: QueueSubmitOptions = {}): Promise<ProducedJob> {
    return this.submit('train', payload, options);
  }

  /** Validates and queues an infer job. */
  submitInfer(payload: InferPayloadInput, options: QueueSubmitOptions = {}): Promise<ProducedJob> {
    return this.submit('infer', payload, options);
  }

  async submit<T extends JobType>(type: T, payload: unknown, options: QueueSubmitOptions = {}): Promise<ProducedJob> {
    if (this.closing) throw new Error('QueueClient is closed');
    const r = validate(payloadSchema(type, this.contract), payload);
    if (!r.ok) throw new PayloadValidationError(JOB_TYPE_SPECS[type].label, r.issues);
    const { name, tags, priority } = options;
    const job = validate(JobOptionsSchema, { name, tags, priority });
    if (!job.ok) throw new PayloadValidationError('job options', job.issues);
    const validated = r.value as PayloadOf<T>;
    const plan = planJob(type, validated, {
      limits: this.contract.limits,
      tenant: this.tenant,
      id: options.id,
      policy: this.policy,
      job: job.value,
      modelVersion: await this.resolveModel(type, validated),
    });
    return produceJob({ redis: this.redis, keys: this.keys, queue: (name) => this.queue(name) }, plan);
  }

  /** The registered version a payload's model reference names (as the api resolves it); throws naming the field. */
  private async resolveModel<T extends JobType>(type: T, payload: PayloadOf<T>): Promise<ModelVersionRef | undefined> {
    const ref = modelRefOf(type, payload);
    if (!ref || !('registered' in ref)) return undefined;
    const r = await resolveModelRef(this.redis, this.keys, this.tenant, ref.registered);
    if (isResolved(r)) return r.ref;
    throw new PayloadValidationError(JOB_TYPE_SPECS[type].label, [
      {
        path: ref.field,
        code: 'not_found',
        message: modelRefProblemMessage(r),
        expected: MODEL_REF_EXPECTED,
        received: JSON.stringify(ref.registered),
      },
    ]);
  }

  /** The BullMQ queue of a name (created on first use, closed by `close()`). */
  queue(name: QueueName): Queue<JobData> {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue<JobData>(name, { connection: this.redis, prefix: this.prefix });
      q.on('error', () => {}); // reported by the failing call
      this.queues.set(name, q);
    }
    return q;
  }

  /**
   * The job's events from its Redis stream (from the start, or after `lastEventId`), then live,
   * ending after a terminal state event. Uses a blocking connection of its own while iterating.
   */
  async *follow(id: string, options: QueueFollowOptions = {}): AsyncGenerator<StoredEvent, void, undefined> {
    for await (const batch of this.events.follow(id, {
      after: options.lastEventId,
      signal: options.signal,
      blockMs: 1000,
    })) {
      options.signal?.throwIfAborted();
      for (const e of batch) {
        yield e;
        if (e.event.type === 'state' && isTerminal(e.event.state)) return;
      }
    }
    options.signal?.throwIfAborted();
  }

  /** The job's result once it completes, from its event stream; `JobFailedError` / `WaitTimeoutError` as `RunnerClient.waitForResult`. */
  async waitForResult<R extends JobResult = JobResult>(
    id: string,
    options: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<R> {
    const ctrl = new AbortController();
    const signals = [ctrl.signal, ...(options.signal ? [options.signal] : [])];
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => ((timedOut = true), ctrl.abort()), options.timeoutMs);
    let last: StoredEvent['event'] | null = null;
    try {
      for await (const { event } of this.follow(id, { signal: AbortSignal.any(signals) })) {
        if (event.type !== 'state') continue;
        last = event;
        if (event.state === 'completed') return event.result as R;
        if (event.state === 'failed' || event.state === 'cancelled')
          throw new JobFailedError(id, event.state, event.error ?? null, null);
      }
      throw new Error(`event stream of job ${id} ended without a final state`);
    } catch (e) {
      if (timedOut) throw new WaitTimeoutError(id, options.timeoutMs ?? 0, last?.type === 'state' ? last.state : null);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the queues and the connection; every step runs even when one fails. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const results = await Promise.allSettled([...this.queues.values()].map((q) => q.close()));
      try {
        await this.redis.quit();
      } catch {
        this.redis.disconnect();
      }
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    })();
    return this.closing;
  }
}
