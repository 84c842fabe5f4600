/**
 * Streaming inference sessions (libs/jobs sessions.ts). Opening checks the model and the initial
 * state and writes the session hash; a step is checked here (its inputs exactly as an infer job's,
 * against the session's model), then queued on the `sessions` queue under the id of its `seq` and
 * awaited through BullMQ's queue events; the worker applies it (apps/worker sessions/).
 */
import { randomUUID } from 'node:crypto';
import { InjectQueue } from '@nestjs/bullmq';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { Job, QueueEvents, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  MODEL_REF_EXPECTED,
  isResolved,
  modelRefProblemMessage,
  resolveModelRef,
  type ModelSource,
  OpenSessionSchema,
  SAFE_ID,
  SESSION_QUEUE,
  SESSION_STEP_JOB_NAME,
  SessionStepResultSchema,
  SessionStepSchema,
  decodeJobError,
  sessionStepJobId,
  validate,
  type JobContract,
  type RedisKeys,
  type SessionFields,
  type SessionStepJobData,
  type SessionStepResult,
  type SessionView,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { closeWithin } from '../infra/close';
import { CONFIG, CONTRACT, KEYS, REDIS } from '../infra/tokens';
import { JobsService } from '../jobs/jobs.service';

/** The model a session runs: the train job it came from, where its files are, and its reference if registered. */
interface SessionModel {
  modelJobId: string;
  source: ModelSource;
  inputSize: number;
  /** `name@version` of a registered model. */
  model?: string;
}

@Injectable()
export class SessionsService implements OnApplicationShutdown {
  private readonly queueEvents: QueueEvents;

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONTRACT) private readonly contract: JobContract,
    @InjectQueue(SESSION_QUEUE) private readonly steps: Queue<SessionStepJobData>,
    private readonly jobs: JobsService,
  ) {
    this.queueEvents = new QueueEvents(SESSION_QUEUE, {
      connection: { url: config.redisUrl, connectionName: `${config.queuePrefix}:api-session-events` },
      prefix: config.queuePrefix,
    });
    this.queueEvents.on('error', () => undefined); // a step then times out or fails with 503
  }

  async open(body: unknown, tenant: string): Promise<SessionView> {
    const parsed = validate(OpenSessionSchema, body);
    if (!parsed.ok) throw ApiError.invalid(parsed.issues);
    const o = parsed.value;
    const m =
      o.model !== undefined ? await this.registeredModel(o.model, tenant) : await this.jobModel(o.modelJobId!, tenant);
    const { modelJobId, inputSize } = m;
    // The initial state is checked as an infer job's (shapes against the model), on a one-step input.
    if (o.initialState)
      this.checkInfer({ modelJobId, inputs: [[Array(inputSize).fill(0)]], initialState: o.initialState }, '');
    const id = randomUUID();
    const now = Date.now();
    const fields: SessionFields = {
      tenant,
      modelJobId,
      modelSource: JSON.stringify(m.source),
      model: m.model ?? '',
      inputSize: String(inputSize),
      next: '0',
      state: '',
      initial: o.initialState ? JSON.stringify(o.initialState) : '',
      last: '',
      idleTtlMs: String(this.config.sessionIdleTtlMs),
      createdAt: String(now),
    };
    await this.redis
      .multi()
      .hset(this.keys.session(id), fields)
      .pexpire(this.keys.session(id), this.config.sessionIdleTtlMs)
      .exec();
    const view = { id, modelJobId, next: 0, idleTtlMs: this.config.sessionIdleTtlMs, createdAt: now };
    return m.model ? { ...view, model: m.model } : view;
  }

  /** A completed train job of the tenant's, by id (400 naming `modelJobId` otherwise). */
  private async jobModel(modelJobId: string, tenant: string): Promise<SessionModel> {
    const { issues, cfg } = await this.jobs.trainedModel(modelJobId, 'modelJobId', tenant);
    if (issues.length) throw ApiError.invalid(issues);
    const source = { storeId: modelJobId, field: 'modelJobId', label: `job ${modelJobId}` };
    return { modelJobId, source, inputSize: cfg?.model.inputSize ?? 1 };
  }

  /** A registered version, `name`, `name@3` or `name@alias`, resolved now (400 naming `model` otherwise). */
  private async registeredModel(ref: string, tenant: string): Promise<SessionModel> {
    const r = await resolveModelRef(this.redis, this.keys, tenant, ref);
    if (!isResolved(r)) {
      const message = modelRefProblemMessage(r);
      throw ApiError.invalid([
        { path: 'model', code: 'not_found', message, expected: MODEL_REF_EXPECTED, received: JSON.stringify(ref) },
      ]);
    }
    const { name, version, storageId, jobId } = r.ref;
    const model = `${name}@${version}`;
    const source = { storeId: storageId, field: 'model', label: `model ${model}` };
    return { modelJobId: jobId, source, inputSize: r.record.model.inputSize, model };
  }

  async get(id: string, tenant: string): Promise<SessionView> {
    const s = await this.fieldsOr404(id, tenant);
    return {
      id,
      modelJobId: s.modelJobId,
      ...(s.model ? { model: s.model } : {}),
      next: Number(s.next),
      idleTtlMs: Number(s.idleTtlMs),
      createdAt: Number(s.createdAt),
    };
  }

  async close(id: string, tenant: string): Promise<void> {
    await this.fieldsOr404(id, tenant);
    await this.redis.del(this.keys.session(id));
  }

  /** Applies step `seq` (or answers it again, when it is the last one applied). */
  async step(id: string, body: unknown, tenant: string): Promise<SessionStepResult> {
    const parsed = validate(SessionStepSchema, body);
    if (!parsed.ok) throw ApiError.invalid(parsed.issues);
    const { seq } = parsed.value;
    const s = await this.fieldsOr404(id, tenant);
    const inputs = this.checkInputs(s, parsed.value.inputs);
    const next = Number(s.next);
    if (seq === next - 1 && s.last) return SessionStepResultSchema.parse(JSON.parse(s.last));
    if (seq !== next) throw outOfOrder(id, seq, next);
    const job = await this.steps.add(
      SESSION_STEP_JOB_NAME,
      { sessionId: id, seq, inputs },
      {
        jobId: sessionStepJobId(id, seq),
        attempts: 3,
        backoff: { type: 'fixed', delay: 100 },
        removeOnComplete: { age: 60, count: 10_000 },
        removeOnFail: { age: 600, count: 10_000 },
      },
    );
    return this.answerOf(job, id, seq);
  }

  private async answerOf(job: Job<SessionStepJobData>, id: string, seq: number): Promise<SessionStepResult> {
    try {
      const value: unknown = await job.waitUntilFinished(this.queueEvents, this.config.sessionStepWaitMs);
      return SessionStepResultSchema.parse(value);
    } catch (e) {
      const message = (e as Error).message;
      if (/timed out/i.test(message))
        throw new ApiError(
          503,
          'unavailable',
          `step ${seq} of session ${id} had no answer within SESSION_STEP_WAIT_MS; retry it with the same seq`,
        );
      const err = decodeJobError(message);
      if (err.code === 'not_found') throw ApiError.notFound(`session ${id}`);
      if (err.code === 'invalid_payload') throw new ApiError(409, 'conflict', err.message);
      throw new ApiError(
        503,
        'unavailable',
        `step ${seq} of session ${id} failed: ${err.message}; retry it with the same seq`,
      );
    }
  }

  /** The inputs as an infer job's: `[B, T, inputSize]`, finite, within the limits. */
  private checkInputs(s: SessionFields, inputs: unknown): number[][][] {
    const state = s.state || s.initial;
    const p = this.checkInfer(
      { modelJobId: s.modelJobId, inputs, ...(state ? { initialState: JSON.parse(state) as unknown } : {}) },
      'inputs',
    );
    const width = p.inputs[0]?.[0]?.length;
    if (width !== Number(s.inputSize))
      throw ApiError.invalid([
        {
          path: 'inputs',
          code: 'custom',
          message: `the session's model reads ${s.inputSize} features per step`,
          expected: `shape [B, T, ${s.inputSize}]`,
          received: `${width} features per step`,
        },
      ]);
    return p.inputs;
  }

  private checkInfer(payload: Record<string, unknown>, only: string): { inputs: number[][][] } {
    const r = validate(this.contract.InferPayload, payload);
    if (r.ok) return r.value as { inputs: number[][][] };
    const issues: ValidationIssue[] = only
      ? r.issues.filter((i) => i.path.startsWith(only) || i.path === '')
      : r.issues;
    throw ApiError.invalid(issues.length ? issues : r.issues);
  }

  private async fieldsOr404(id: string, tenant: string): Promise<SessionFields> {
    const raw = SAFE_ID.test(id) ? await this.redis.hgetall(this.keys.session(id)) : {};
    if (raw.tenant !== tenant) throw ApiError.notFound(`session ${id}`);
    return raw as unknown as SessionFields;
  }

  async onApplicationShutdown(): Promise<void> {
    await closeWithin(this.queueEvents);
  }
}

function outOfOrder(id: string, seq: number, next: number): ApiError {
  return new ApiError(
    409,
    'conflict',
    `session ${id} is at step ${next}: seq ${seq} ${seq < next ? 'was applied already (only the last step is answered again)' : 'is ahead of it; send the steps in order'}`,
    [
      {
        path: 'seq',
        code: 'custom',
        message: 'the next step of the session',
        expected: String(next),
        received: String(seq),
      },
    ],
  );
}
