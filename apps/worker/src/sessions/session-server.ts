/**
 * Serves the steps of streaming inference sessions (libs/jobs sessions.ts) from their dedicated
 * queue, the Redis list `keys.sessionSteps()`, apart from the BullMQ job queues: every worker pops it
 * (BRPOP on a connection of its own, one step at a time) and runs the forward pass in its own
 * process (step-engine.ts, models kept warm), so a training in the job engine (a child process)
 * never delays a step.
 *
 * A request carries the state to continue from (SUBMIT_STEP_SCRIPT copies it in for its `seq`), so
 * a step reads nothing before computing;
 * one script then commits the new state and the answer only if the session is still at this `seq`
 * and pushes the reply to the api (COMMIT_STEP_SCRIPT). A request pushed again by the api (`retry`:
 * the worker that popped it first may have died) is first checked against the session, and answered
 * from the stored answer when already applied; nothing is applied twice.
 */
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  ANSWER_IF_DONE_SCRIPT,
  COMMIT_STEP_SCRIPT,
  SESSION_REPLY_TTL_MS,
  sessionFailedReply,
  type ArtifactStore,
  type SessionStepRequest,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { toJobError } from '../engine/errors';
import { ARTIFACT_STORE, RedisService } from '../redis';
import { StepInputError } from './step-input';
import type { StepEngine } from './step-engine';

/** Seconds a BRPOP blocks before the loop looks at `closing` again. */
const POP_TIMEOUT_S = 1;

type StepScript = (
  session: string,
  reply: string,
  seq: string,
  state: string,
  answer: string,
  requestId: string,
  ttlMs: string,
) => Promise<number>;

@Injectable()
export class SessionServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Sessions');
  /** The blocking connection of the BRPOP loop. */
  private readonly popper: Redis;
  private readonly commit: StepScript;
  private readonly answerIfDone: StepScript;
  private engine: Promise<StepEngine> | null = null;
  private closing = false;
  private loop: Promise<void> | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: RedisService,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
  ) {
    this.popper = redis.connection.duplicate({
      connectionName: `relu-lstm-worker:${config.workerId}:session-steps`,
      lazyConnect: true,
    });
    this.popper.on('error', () => undefined); // RedisService reports outages; BRPOP waits through them
    const conn = redis.connection as Redis & Record<string, StepScript>;
    if (!conn.sessionCommitStep) {
      conn.defineCommand('sessionCommitStep', { numberOfKeys: 2, lua: COMMIT_STEP_SCRIPT });
      conn.defineCommand('sessionAnswerIfDone', { numberOfKeys: 2, lua: ANSWER_IF_DONE_SCRIPT });
    }
    this.commit = (...a) => conn.sessionCommitStep(...a);
    this.answerIfDone = (...a) => conn.sessionAnswerIfDone(...a);
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.popper.connect();
    this.loop = this.serve();
  }

  private async serve(): Promise<void> {
    const list = this.redis.keys.sessionSteps();
    while (!this.closing) {
      let popped: [string, string] | null;
      try {
        popped = await this.popper.brpop(list, POP_TIMEOUT_S);
      } catch (e) {
        if (this.closing) return;
        this.log.warn(`${list}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      if (popped) await this.step(popped[1]);
    }
  }

  /** Serves one request; its reply goes to the api whatever happens (a failure becomes a `failed` reply). */
  async step(raw: string): Promise<void> {
    let req: SessionStepRequest;
    try {
      req = JSON.parse(raw) as SessionStepRequest;
    } catch {
      this.log.warn(`dropped an unreadable session step request: ${raw.slice(0, 80)}`);
      return;
    }
    if (Date.now() > req.deadline) return; // the api answered 503 already; a retry of the client pushes anew
    const key = this.redis.keys.session(req.sessionId);
    const args = (state: string, answer: string) =>
      [key, req.reply, String(req.seq), state, answer, req.id, String(SESSION_REPLY_TTL_MS)] as const;
    try {
      if (req.retry && (await this.answerIfDone(...args('', ''))) !== -1) return;
      const engine = await this.stepEngine();
      const answer = await engine.forward({
        seq: req.seq,
        modelSource: req.modelSource,
        inputs: req.inputs,
        state: req.state,
      });
      await this.commit(...args(JSON.stringify({ h0: answer.hN, c0: answer.cN }), JSON.stringify(answer)));
    } catch (e) {
      const err = e instanceof StepInputError ? e.issue : toJobError(e);
      await this.redis.connection
        .multi()
        .rpush(req.reply, sessionFailedReply(req.id, err))
        .pexpire(req.reply, SESSION_REPLY_TTL_MS)
        .exec()
        .catch(() => undefined); // Redis is down: the api times out with 503
    }
  }

  private stepEngine(): Promise<StepEngine> {
    if (this.engine === null) {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- TensorFlow.js loads only once a step comes
      const { StepEngine } = require('./step-engine') as typeof import('./step-engine');
      this.engine = StepEngine.start({
        backend: this.config.backend,
        artifacts: this.artifacts,
        modelCacheSize: this.config.modelCacheSize,
        modelCacheMb: this.config.modelCacheMb,
      });
      this.engine.catch(() => (this.engine = null)); // a failed start is tried again on the next step
    }
    return this.engine;
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closing = true;
    // A request popped but not yet answered is pushed again by the api after SESSION_STEP_RESEND_MS.
    this.popper.disconnect();
    await this.loop?.catch(() => undefined);
    (await this.engine?.catch(() => null))?.close();
  }
}
