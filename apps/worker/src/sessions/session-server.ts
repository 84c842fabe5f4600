/**
 * Serves the steps of streaming inference sessions (libs/jobs sessions.ts) from their dedicated
 * queue, the Redis list `keys.sessionSteps()`, apart from the BullMQ job queues: every worker pops it
 * (BRPOP on a connection of its own, one step at a time) and runs the forward pass in its own
 * process (step-engine.ts, models kept warm), so a training in the job engine (a child process)
 * never delays a step.
 *
 * A request carries the state to continue from (SUBMIT_STEP_SCRIPT copies it in for its `seq`), so
 * a step reads nothing before computing; one script then commits the new state and the answer only
 * if the session is still at this `seq` and publishes the reply to the api (COMMIT_STEP_SCRIPT). A request pushed again by the api (`retry`:
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

/** KEYS and ARGV of COMMIT_STEP_SCRIPT and ANSWER_IF_DONE_SCRIPT. */
type StepScriptArgs = readonly [
  session: string,
  seq: string,
  state: string,
  answer: string,
  requestId: string,
  channel: string,
];
type Popped = [string, string] | null;

interface StepScripts {
  sessionCommitStep(...a: StepScriptArgs): Promise<number>;
  sessionAnswerIfDone(...a: StepScriptArgs): Promise<number>;
}

function defineStepScripts(conn: Redis): Redis & StepScripts {
  conn.defineCommand('sessionCommitStep', { numberOfKeys: 1, lua: COMMIT_STEP_SCRIPT });
  conn.defineCommand('sessionAnswerIfDone', { numberOfKeys: 1, lua: ANSWER_IF_DONE_SCRIPT });
  return conn as Redis & StepScripts;
}

@Injectable()
export class SessionServer implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly log = new Logger('Sessions');
  /** The blocking connection of the BRPOP loop; a step's commit goes on it together with the next BRPOP. */
  private readonly popper: Redis & StepScripts;
  private readonly list: string;
  private engine: Promise<StepEngine> | null = null;
  private closing = false;
  private loop: Promise<void> | null = null;

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly redis: RedisService,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
  ) {
    this.list = redis.keys.sessionSteps();
    this.popper = defineStepScripts(
      redis.connection.duplicate({
        connectionName: `relu-lstm-worker:${config.workerId}:session-steps`,
        lazyConnect: true,
      }),
    );
    this.popper.on('error', () => undefined); // RedisService reports outages; BRPOP waits through them
  }

  async onApplicationBootstrap(): Promise<void> {
    await this.popper.connect();
    this.loop = this.serve();
  }

  private async serve(): Promise<void> {
    let popped: Popped = null;
    while (!this.closing) {
      try {
        popped = popped ? await this.step(popped[1]) : await this.popper.brpop(this.list, POP_TIMEOUT_S);
      } catch (e) {
        popped = null;
        if (this.closing) return;
        this.log.warn(`${this.list}: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Serves one request and returns the next one popped, if any: the commit and the next BRPOP go in
   * one write (a socket write is not free). Its reply goes to the api whatever happens (a failure
   * to compute becomes a `failed` reply).
   */
  async step(raw: string): Promise<Popped> {
    let req: SessionStepRequest;
    try {
      req = JSON.parse(raw) as SessionStepRequest;
    } catch {
      this.log.warn(`dropped an unreadable session step request: ${raw.slice(0, 80)}`);
      return null;
    }
    if (Date.now() > req.deadline) return null; // the api answered 503 already; a retry of the client pushes anew
    const args = (state: string, answer: string): StepScriptArgs => [
      this.redis.keys.session(req.sessionId),
      String(req.seq),
      state,
      answer,
      req.id,
      req.reply,
    ];
    let commit: StepScriptArgs;
    try {
      if (req.retry && (await this.popper.sessionAnswerIfDone(...args('', ''))) !== -1) return null;
      const engine = await this.stepEngine();
      const answer = await engine.forward({
        seq: req.seq,
        modelSource: req.modelSource,
        inputs: req.inputs,
        state: req.state,
      });
      commit = args(JSON.stringify({ h0: answer.hN, c0: answer.cN }), JSON.stringify(answer));
    } catch (e) {
      const err = e instanceof StepInputError ? e.issue : toJobError(e);
      await this.popper.publish(req.reply, sessionFailedReply(req.id, err)).catch(() => undefined); // Redis down: 503
      return null;
    }
    const pipeline = this.popper.pipeline() as ReturnType<Redis['pipeline']> & {
      sessionCommitStep(...a: StepScriptArgs): unknown;
    };
    pipeline.sessionCommitStep(...commit);
    pipeline.brpop(this.list, POP_TIMEOUT_S);
    const [committed, next] = (await pipeline.exec()) ?? [];
    if (committed?.[0]) this.log.warn(`session ${req.sessionId} step ${req.seq}: ${committed[0].message}`);
    if (next?.[0]) throw next[0];
    return (next?.[1] as Popped | undefined) ?? null;
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
