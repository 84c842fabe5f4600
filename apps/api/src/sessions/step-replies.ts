/**
 * The api's side of the session step queue (libs/jobs sessions.ts): checks the session and pushes
 * the step request in one script (SUBMIT_STEP_SCRIPT), then waits for its reply on this process's
 * own reply channel, which a connection of its own subscribes to and hands to the waiting request
 * by id (pub/sub: no command per reply). While no reply came it submits the request again every
 * SESSION_STEP_RESEND_MS (the worker that popped it may have died mid-step; a step applied
 * meanwhile is then answered from the stored answer at once); it gives up after SESSION_STEP_WAIT_MS.
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
  /** This api process's id: the name of its reply channel. */
  readonly apiId = randomUUID();
  private readonly channel: string;
  private readonly subscriber: Redis;
  private subscribed: Promise<unknown> | null = null;
  private readonly pending = new Map<string, (r: SessionStepReply | null) => void>();
  private readonly submit: SubmitScript;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
    private readonly waitMs: number,
  ) {
    this.channel = keys.sessionReplies(this.apiId);
    // ioredis subscribes again after a reconnection; a reply published meanwhile is lost, and the
    // resend below then finds the step applied and answers it from the stored answer.
    this.subscriber = redis.duplicate({ connectionName: `${keys.prefix}:api-session-replies`, lazyConnect: true });
    this.subscriber.on('error', () => undefined); // a step then waits for its resend, or times out with 503
    this.subscriber.on('message', (_channel: string, raw: string) => {
      const r = parseSessionStepReply(raw);
      if (r) this.settle(r.id, r); // a reply nobody waits for (a duplicate's) is dropped
    });
    const conn = redis as Redis & { sessionSubmitStep?: SubmitScript };
    if (!conn.sessionSubmitStep) conn.defineCommand('sessionSubmitStep', { numberOfKeys: 2, lua: SUBMIT_STEP_SCRIPT });
    this.submit = (...a) => conn.sessionSubmitStep!(...a);
  }

  /**
   * Submits the step and resolves with its reply (at once when the session answers without a worker:
   * gone, at another step, or the step applied already), or null when none came within SESSION_STEP_WAIT_MS.
   */
  async request(step: StepSubmission): Promise<SessionStepReply | null> {
    this.subscribed ??= this.subscribe().catch((e: unknown) => {
      this.subscribed = null;
      throw e;
    });
    await this.subscribed;
    const { tenant, ...fields } = step;
    const req = { ...fields, id: randomUUID(), reply: this.channel, deadline: Date.now() + this.waitMs };
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

  private async subscribe(): Promise<void> {
    if (this.subscriber.status === 'wait') await this.subscriber.connect();
    await this.subscriber.subscribe(this.channel);
  }

  private settle(id: string, r: SessionStepReply | null): void {
    const resolve = this.pending.get(id);
    this.pending.delete(id);
    resolve?.(r);
  }

  close(): void {
    this.subscriber.disconnect();
    for (const id of [...this.pending.keys()]) this.settle(id, null);
  }
}
