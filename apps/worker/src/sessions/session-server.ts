/**
 * Serves the steps of streaming inference sessions (libs/jobs sessions.ts) from the `sessions`
 * queue, apart from the job queues: every worker process runs a BullMQ Worker on it (concurrency 1)
 * and a second, small engine of its own (the same engine/main.js, forked on the first step), so a
 * training in the job engine never delays a step, and the session engine keeps its models warm (the
 * engine's LRU of loaded models, MODEL_CACHE_SIZE entries) between steps.
 *
 * A step reads the session's state from Redis, runs one forward pass from it, and commits the new
 * state and its answer with one script that applies only if the session is still at this `seq`
 * (COMMIT_STEP_SCRIPT). A step already applied (a retry, or a worker that died after the commit)
 * is answered from the stored answer; nothing is applied twice.
 */
import { randomBytes } from 'node:crypto';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import {
  COMMIT_STEP_SCRIPT,
  PERMANENT_ERROR_CODES,
  SESSION_QUEUE,
  SessionStepResultSchema,
  encodeJobError,
  type InferPayload,
  type JobErrorInput,
  type ModelSource,
  type SessionFields,
  type SessionStepJobData,
  type SessionStepResult,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { EngineClient } from '../engine/engine-client';
import { RedisService } from '../redis';

function stepFailure(e: JobErrorInput): Error {
  const text = encodeJobError(e);
  return PERMANENT_ERROR_CODES.includes(e.code) ? new UnrecoverableError(text) : new Error(text);
}

@Injectable()
export class SessionServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Sessions');
  /** The session engine: a second engine process, forked on the first step. */
  private readonly engine: EngineClient;
  private worker: Worker<SessionStepJobData, SessionStepResult> | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: RedisService,
  ) {
    this.engine = new EngineClient(config);
  }

  async onApplicationBootstrap(): Promise<void> {
    this.worker = new Worker<SessionStepJobData, SessionStepResult>(SESSION_QUEUE, (job) => this.step(job), {
      connection: this.redis.connection,
      prefix: this.config.queuePrefix,
      concurrency: 1,
      name: this.config.workerId,
      lockDuration: this.config.lock.durationMs,
      stalledInterval: this.config.lock.stalledIntervalMs,
    });
    this.worker.on('error', (err) => this.log.warn(`queue ${SESSION_QUEUE}: ${err.message}`));
    await this.worker.waitUntilReady();
  }

  async step(job: Job<SessionStepJobData, SessionStepResult>): Promise<SessionStepResult> {
    const { sessionId, seq, inputs } = job.data;
    const key = this.redis.keys.session(sessionId);
    const s = (await this.redis.connection.hgetall(key)) as unknown as Partial<SessionFields>;
    if (!s.tenant) throw gone(sessionId);
    const next = Number(s.next);
    if (seq === next - 1 && s.last) return SessionStepResultSchema.parse(JSON.parse(s.last));
    if (seq !== next) throw notAt(sessionId, seq, next);
    const answer = await this.forward({
      sessionId,
      seq,
      inputs,
      modelJobId: s.modelJobId!,
      modelSource: s.modelSource
        ? (JSON.parse(s.modelSource) as ModelSource)
        : { storeId: s.modelJobId!, field: 'modelJobId', label: `job ${s.modelJobId}` },
      state: s.state || s.initial || '',
    });
    const r = Number(
      await this.redis.connection.eval(
        COMMIT_STEP_SCRIPT,
        1,
        key,
        String(seq),
        JSON.stringify({ h0: answer.hN, c0: answer.cN }),
        JSON.stringify(answer),
      ),
    );
    if (r === -1) return answer;
    if (r === -2) throw gone(sessionId);
    // Another attempt of this step committed first: its answer is the one.
    const last = r === seq + 1 ? await this.redis.connection.hget(key, 'last') : null;
    if (last) return SessionStepResultSchema.parse(JSON.parse(last));
    throw notAt(sessionId, seq, r);
  }

  /** One forward pass in the session engine from the stored state. */
  private async forward(o: {
    sessionId: string;
    seq: number;
    inputs: number[][][];
    modelJobId: string;
    modelSource: ModelSource;
    state: string;
  }): Promise<SessionStepResult> {
    const payload = {
      modelJobId: o.modelJobId,
      inputs: o.inputs,
      device: 'any',
      ...(o.state ? { initialState: JSON.parse(o.state) as InferPayload['initialState'] } : {}),
    } as InferPayload;
    const runId = `${o.sessionId}:${o.seq}:${randomBytes(4).toString('hex')}`;
    const outcome = await this.engine.run(
      { kind: 'infer', runId, jobId: o.sessionId, payload, modelSource: o.modelSource },
      () => undefined,
    );
    if (outcome.kind === 'failed') throw stepFailure(outcome.error);
    if (outcome.kind !== 'inferred')
      throw stepFailure({ code: 'internal', message: `unexpected engine reply '${outcome.kind}'` });
    const { outputs, hN, cN } = outcome.result;
    if (!('inline' in outputs))
      throw stepFailure({
        code: 'invalid_payload',
        message: 'too many outputs for one step (INFER_INLINE_OUTPUTS_MAX); send fewer time steps',
      });
    return { seq: o.seq, outputs: outputs.inline, hN, cN };
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.worker?.close().catch((e) => this.log.warn(`close: ${(e as Error).message}`));
    await this.engine.close();
  }
}

function gone(sessionId: string): Error {
  return stepFailure({ code: 'not_found', message: `session ${sessionId} is gone (closed or expired)` });
}

function notAt(sessionId: string, seq: number, next: number): Error {
  return stepFailure({ code: 'invalid_payload', message: `session ${sessionId} is at step ${next}, not ${seq}` });
}
