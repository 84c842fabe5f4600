/**
 * The api's side of the session step queue (libs/jobs sessions.ts): checks the session and pushes
 * the step request in one script (SUBMIT_STEP_SCRIPT), then waits for its reply on this process's
 * own reply list, which one loop pops (BLPOP on a connection of its own) and hands to the waiting
 * request by id. While no reply came it submits the request again every SESSION_STEP_RESEND_MS (the
 * worker that popped it may have died mid-step; a step applied meanwhile is then answered from the
 * stored answer at once); it gives up after SESSION_STEP_WAIT_MS.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import {
  SESSION_STEP_RESEND_MS,
  SUBMIT_STEP_SCRIPT,
  parseSessionStepReply,
  sessionStepRequestHead,
  type RedisKeys,
  type SessionStepReply,
  type SessionStepRequest,
} from '@relu-lstm/jobs';

/** Seconds one BLPOP blocks before the loop looks at `closed` again. */
const POP_TIMEOUT_S = 5;

type SubmitScript = (
  session: string,
  steps: string,
  tenant: string,
  seq: string,
  head: string,
  again: string,
  waitMs: string,
) => Promise<[string, string]>;

/** What the api knows of a step before submitting it. */
export interface StepSubmission {
  tenant: string;
  sessionId: string;
  seq: number;
  inputs: number[][][];
  modelSource: SessionStepRequest['modelSource'];
}

export class StepReplies {
  /** This api process's id: the name of its reply list. */
  readonly apiId = randomUUID();
  private readonly listKey: string;
  private readonly popper: Redis;
  private readonly pending = new Map<string, (r: SessionStepReply | null) => void>();
  private readonly submit: SubmitScript;
  private closed = false;
  private loop: Promise<void> | null = null;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    private readonly waitMs: number,
  ) {
    this.listKey = keys.sessionReplies(this.apiId);
    this.popper = redis.duplicate({ connectionName: `${keys.prefix}:api-session-replies`, maxRetriesPerRequest: null });
    this.popper.on('error', () => undefined); // a step then times out with 503
    const conn = redis as Redis & { sessionSubmitStep?: SubmitScript };
    if (!conn.sessionSubmitStep) conn.defineCommand('sessionSubmitStep', { numberOfKeys: 2, lua: SUBMIT_STEP_SCRIPT });
    this.submit = (...a) => conn.sessionSubmitStep!(...a);
  }

  /**
   * Submits the step and resolves with its reply (at once when the session answers without a worker:
   * gone, at another step, or the step applied already), or null when none came within SESSION_STEP_WAIT_MS.
   */
  async request(step: StepSubmission): Promise<SessionStepReply | null> {
    this.loop ??= this.popLoop();
    const { tenant, ...fields } = step;
    const req = { ...fields, id: randomUUID(), reply: this.listKey, deadline: Date.now() + this.waitMs };
    const reply = new Promise<SessionStepReply | null>((resolve) => this.pending.set(req.id, resolve));
    const sessionKey = this.keys.session(step.sessionId);
    const submit = async (again: boolean) => {
      const head = sessionStepRequestHead(again ? { ...req, retry: true } : req);
      const [kind, body] = await this.submit(
        sessionKey,
        this.keys.sessionSteps(),
        tenant,
        String(step.seq),
        head,
        again ? '1' : '0',
        String(this.waitMs),
      );
      if (kind !== 'queued') this.settle(req.id, parseSessionStepReply(`${req.id}|${kind}|${body}`));
    };
    const resend = setInterval(() => void submit(true).catch(() => undefined), SESSION_STEP_RESEND_MS);
    const timeout = setTimeout(() => this.settle(req.id, null), this.waitMs);
    try {
      await submit(false);
      return await reply;
    } finally {
      clearInterval(resend);
      clearTimeout(timeout);
      this.pending.delete(req.id);
    }
  }

  private settle(id: string, r: SessionStepReply | null): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.(r);
  }

  /** Hands each reply to its waiting request (a reply nobody waits for, e.g. of a duplicate, is dropped). */
  private async popLoop(): Promise<void> {
    while (!this.closed) {
      try {
        const popped = await this.popper.blpop(this.listKey, POP_TIMEOUT_S);
        if (!popped) continue;
        const r = parseSessionStepReply(popped[1]);
        if (r) this.settle(r.id, r);
        // The next BLPOP waits for the answer to be written first: a socket write is not free here.
        await new Promise((res) => setImmediate(res));
      } catch {
        if (this.closed) return;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
  }

  close(): void {
    this.closed = true;
    this.popper.disconnect();
    for (const id of [...this.pending.keys()]) this.settle(id, null);
  }
}
