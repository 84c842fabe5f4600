/**
 * Streaming inference sessions: a trained model served as a stream whose (h, c) stays in Redis
 * between calls. `POST /v1/sessions` opens one, `POST /v1/sessions/:id/step` `{ inputs, seq }`
 * continues from the state the previous step left, `DELETE` closes it; an idle session expires
 * (SESSION_IDLE_TTL_MS of the api).
 *
 * The session is one Redis hash (`keys.session(id)`): its tenant, model, the number of the next
 * step (`next`), the state after the last step and that step's answer. A step is a job on the
 * `sessions` queue (BullMQ id `<session>-<seq>`, so a retried step is the same job); the worker that
 * takes it computes from the stored state and commits the new state, `next + 1` and the answer in
 * one script that applies only when `next` still equals the step's `seq`. So the steps of a session
 * apply in order and exactly once, whichever worker serves them and whatever dies in between: a
 * step whose `seq` is `next - 1` is answered from the stored answer, never computed again.
 */
import { z } from 'zod';
import { DEVICES } from './payloads';

/** The BullMQ queue of session steps (never a device queue: its own small engine serves it). */
export const SESSION_QUEUE = 'sessions';
export const SESSION_STEP_JOB_NAME = 'step';

/** The BullMQ job id of step `seq` of a session: a retry of the same step is the same job. */
export const sessionStepJobId = (sessionId: string, seq: number): string => `${sessionId}-${seq}`;

const tensor3 = z.array(z.array(z.array(z.number())));

/** POST /v1/sessions. `model` is a registry reference (`name`, `name@3`, `name@alias`), resolved once at open. */
export const OpenSessionSchema = z
  .strictObject({
    modelJobId: z.uuid().optional(),
    model: z.string().min(1).max(200).optional(),
    /** `[L*D, B or 1, H]` each; default zeros. */
    initialState: z.strictObject({ h0: tensor3, c0: tensor3 }).optional(),
    device: z.enum(DEVICES).default('any'),
  })
  .refine((o) => (o.modelJobId === undefined) !== (o.model === undefined), {
    message: 'exactly one of modelJobId, model',
    path: ['modelJobId'],
  });
export type OpenSession = z.output<typeof OpenSessionSchema>;
export type OpenSessionInput = z.input<typeof OpenSessionSchema>;

/** POST /v1/sessions/:id/step: `inputs` `[B][T][features]` (one or more time steps), `seq` 0, 1, 2, ... */
export const SessionStepSchema = z.strictObject({
  inputs: z.unknown(),
  seq: z.number().int().min(0),
});
export type SessionStepInput = z.input<typeof SessionStepSchema>;

export const SessionViewSchema = z.strictObject({
  id: z.string(),
  /** The train job the model came from (for a registered model, the job it was registered from). */
  modelJobId: z.string(),
  /** `name@version` when the session was opened with a registry reference. */
  model: z.string().optional(),
  /** The `seq` the next step must carry. */
  next: z.number().int().min(0),
  idleTtlMs: z.number().int(),
  createdAt: z.number().int(),
});
export type SessionView = z.output<typeof SessionViewSchema>;

/** A step's answer: the outputs of its time steps and the state after them. */
export const SessionStepResultSchema = z.strictObject({
  seq: z.number().int().min(0),
  outputs: tensor3,
  hN: tensor3,
  cN: tensor3,
});
export type SessionStepResult = z.output<typeof SessionStepResultSchema>;

/** The data of a step job. */
export interface SessionStepJobData {
  sessionId: string;
  seq: number;
  inputs: number[][][];
}

/** Fields of the session hash. */
export interface SessionFields {
  tenant: string;
  modelJobId: string;
  /** JSON `ModelSource`: where the worker loads the model's files from. */
  modelSource: string;
  /** `name@version` of a registered model, or empty. */
  model: string;
  inputSize: string;
  next: string;
  /** JSON `{ h0, c0 }` of the state to continue from; empty: `initial`, else zeros. */
  state: string;
  /** JSON `{ h0, c0 }` given at open, or empty. */
  initial: string;
  /** JSON `SessionStepResult` of step `next - 1`, or empty. */
  last: string;
  idleTtlMs: string;
  createdAt: string;
}

/**
 * KEYS: the session hash. ARGV: seq, state JSON, answer JSON. Applies the step when `next == seq`
 * (new state, answer, next + 1, idle TTL renewed) and returns -1; otherwise returns `next` (-2: the
 * session is gone) and changes nothing.
 */
export const COMMIT_STEP_SCRIPT = `if redis.call('EXISTS', KEYS[1]) == 0 then return -2 end
local n = tonumber(redis.call('HGET', KEYS[1], 'next'))
if n ~= tonumber(ARGV[1]) then return n end
redis.call('HSET', KEYS[1], 'next', n + 1, 'state', ARGV[2], 'last', ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(redis.call('HGET', KEYS[1], 'idleTtlMs')))
return -1`;
