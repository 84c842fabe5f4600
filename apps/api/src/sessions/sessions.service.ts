/**
 * Streaming inference sessions (libs/jobs sessions.ts). Opening checks the model and the initial
 * state and writes the session hash; a step is checked here (its inputs exactly as an infer job's,
 * against the session's model), then pushed on the step queue with the state it continues from and
 * awaited on this process's reply channel (step-replies.ts); a worker applies it (apps/worker sessions/).
 */
import { randomUUID } from 'node:crypto';
import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  MODEL_REF_EXPECTED,
  isResolved,
  modelRefProblemMessage,
  resolveModelRef,
  type ModelSource,
  OpenSessionSchema,
  SAFE_ID,
  SessionStepSchema,
  validate,
  type JobContract,
  type RedisKeys,
  type SessionFields,
  type SessionStepReply,
  type SessionStepResult,
  type SessionView,
  type ValidationIssue,
} from '@relu-lstm/jobs';
import type { ApiConfig } from '../config';
import { ApiError } from '../http/errors';
import { CONFIG, CONTRACT, KEYS, REDIS } from '../infra/tokens';
import { JobsService } from '../jobs/jobs.service';
import { StepReplies } from './step-replies';

/** The model a session runs: the train job it came from, where its files are, and its reference if registered. */
interface SessionModel {
  modelJobId: string;
  source: ModelSource;
  inputSize: number;
  /** `name@version` of a registered model. */
  model?: string;
}

/** What a step needs of its session besides what SUBMIT_STEP_SCRIPT reads: fixed when the session opens. */
interface StepModel {
  tenant: string;
  modelJobId: string;
  inputSize: number;
  modelSource: ModelSource;
}

const STEP_MODELS_KEPT = 10_000;

@Injectable()
export class SessionsService implements OnApplicationShutdown {
  private readonly replies: StepReplies;
  /** The models of sessions stepped lately, by session id (oldest dropped past STEP_MODELS_KEPT). */
  private readonly models = new Map<string, StepModel>();

  constructor(
    @Inject(CONFIG) private readonly config: ApiConfig,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(KEYS) private readonly keys: RedisKeys,
    @Inject(CONTRACT) private readonly contract: JobContract,
    private readonly jobs: JobsService,
  ) {
    this.replies = new StepReplies(redis, keys, config.sessionStepWaitMs);
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
    return { modelJobId, source: jobSource(modelJobId), inputSize: cfg?.model.inputSize ?? 1 };
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
    this.models.delete(id);
    await this.redis.del(this.keys.session(id));
  }

  /** Applies step `seq` (or answers it again, when it is the last one applied). */
  /**
   * Applies step `seq` (or answers it again, when it is the last one applied). The session's order,
   * owner and state are checked where the step is queued, in one script (StepReplies); the inputs
   * are checked here against the model's width, and against the state's batch by the worker.
   */
  async step(id: string, body: unknown, tenant: string): Promise<SessionStepResult> {
    const parsed = validate(SessionStepSchema, body);
    if (!parsed.ok) throw ApiError.invalid(parsed.issues);
    const { seq } = parsed.value;
    const m = await this.stepModel(id, tenant);
    const inputs = this.checkInputs(m, parsed.value.inputs);
    const reply = await this.replies
      .request({ tenant, sessionId: id, seq, inputs, modelSource: m.modelSource })
      .catch(() => null); // Redis refused the script: as unanswered
    return answerOf(reply, id, seq);
  }

  /** The session's model (fixed at open, so kept here by id); 404 when the session is not the tenant's. */
  private async stepModel(id: string, tenant: string): Promise<StepModel> {
    const known = this.models.get(id);
    if (known?.tenant === tenant) return known;
    const s = await this.fieldsOr404(id, tenant);
    const m: StepModel = {
      tenant,
      modelJobId: s.modelJobId,
      inputSize: Number(s.inputSize),
      modelSource: JSON.parse(s.modelSource) as ModelSource,
    };
    if (this.models.size >= STEP_MODELS_KEPT) this.models.delete(this.models.keys().next().value!);
    this.models.set(id, m);
    return m;
  }

  /** The inputs as an infer job's: `[B, T, inputSize]`, finite, within the limits. */
  private checkInputs(m: StepModel, inputs: unknown): number[][][] {
    const p = this.checkInfer({ modelJobId: m.modelJobId, inputs }, 'inputs');
    const width = p.inputs[0]?.[0]?.length;
    if (width !== m.inputSize)
      throw ApiError.invalid([
        {
          path: 'inputs',
          code: 'custom',
          message: `the session's model reads ${m.inputSize} features per step`,
          expected: `shape [B, T, ${m.inputSize}]`,
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

  onApplicationShutdown(): void {
    this.replies.close();
  }
}

function jobSource(modelJobId: string): ModelSource {
  return { storeId: modelJobId, field: 'modelJobId', label: `job ${modelJobId}` };
}

/** The HTTP answer of a step's reply (null: none came in time). */
function answerOf(reply: SessionStepReply | null, id: string, seq: number): SessionStepResult {
  switch (reply?.kind) {
    case 'ok':
      return JSON.parse(reply.answer) as SessionStepResult;
    case 'gone':
      throw ApiError.notFound(`session ${id}`);
    case 'at':
      throw outOfOrder(id, seq, reply.next);
    case 'failed':
      if (reply.code === 'not_found') throw new ApiError(404, 'not_found', reply.message);
      if (reply.code === 'invalid_payload')
        throw ApiError.invalid([
          {
            path: 'inputs',
            code: 'custom',
            message: reply.message,
            expected: reply.expected ?? 'inputs the session can take',
            received: reply.received ?? 'other inputs',
          },
        ]);
      throw new ApiError(
        503,
        'unavailable',
        `step ${seq} of session ${id} failed: ${reply.message}; retry it with the same seq`,
      );
    default:
      throw new ApiError(
        503,
        'unavailable',
        `step ${seq} of session ${id} had no answer within SESSION_STEP_WAIT_MS; retry it with the same seq`,
      );
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
