/**
 * Streaming inference sessions: a trained model served as a stream whose (h, c) stays in Redis
 * between calls. `POST /v1/sessions` opens one, `POST /v1/sessions/:id/step` `{ inputs, seq }`
 * continues from the state the previous step left, `DELETE` closes it; an idle session expires
 * (SESSION_IDLE_TTL_MS of the api).
 *
 * The session is one Redis hash (`keys.session(id)`): its tenant, model, the number of the next
 * step (`next`), the state after the last step and that step's answer. Steps travel on a dedicated
 * queue that is a plain Redis list (`keys.sessionSteps()`), not BullMQ: the api checks the session
 * and pushes a small `SessionStepRequest` carrying the state to continue from in one script
 * (SUBMIT_STEP_SCRIPT), every worker pops the list (BRPOP, one step at a time), computes and commits
 * the new state, `next + 1` and the answer with one script that applies only when `next` still equals
 * the step's `seq`, and publishes the reply on the api's own reply channel
 * (`keys.sessionReplies(apiId)`) in the same script. So the steps of a session apply in
 * order and exactly once, whichever worker serves them and whatever dies in between: a step whose
 * `seq` is `next - 1` is answered from the stored answer, never computed again. A request lost with
 * a killed worker is pushed again by the api (every SESSION_STEP_RESEND_MS while it waits).
 */
import { z } from 'zod';
import { DEVICES } from './payloads';
import type { ModelSource } from './job-types';

/**
 * How long the api waits for a step's reply before it pushes the request again (flagged `retry`):
 * the worker that popped it may have died mid-step. A step is idempotent by `seq`, so a duplicate
 * is answered from the stored answer, never applied twice.
 */
export const SESSION_STEP_RESEND_MS = 1000;

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

/** A step on the `session-steps` list (JSON): all a worker needs, so it reads nothing before computing. */
export interface SessionStepRequest {
  /** The request's own id (each push of the same step keeps it): the key of its reply. */
  id: string;
  sessionId: string;
  seq: number;
  inputs: number[][][];
  /** Where the worker loads the session's model from. */
  modelSource: ModelSource;
  /** The api's reply channel (pub/sub). */
  reply: string;
  /** Epoch ms after which the api no longer waits: a worker drops the request unanswered. */
  deadline: number;
  /** A push again after SESSION_STEP_RESEND_MS: the worker first checks whether the step was applied. */
  retry?: boolean;
  /**
   * The state this `seq` continues from (the session's `state`, else `initial`; null: zeros), copied
   * in by SUBMIT_STEP_SCRIPT, so it is always the last field.
   */
  state: { h0: number[][][]; c0: number[][][] } | null;
}

/** The JSON of a request up to its `state`, which SUBMIT_STEP_SCRIPT appends. */
export function sessionStepRequestHead(req: Omit<SessionStepRequest, 'state'>): string {
  return `${JSON.stringify(req).slice(0, -1)},"state":`;
}

/**
 * KEYS: the session hash, the step list. ARGV: tenant, seq, the request's head
 * (`sessionStepRequestHead`), '1' for a push again (to the end the workers pop first), the api's
 * wait in ms. When the session is the tenant's and at `seq`, pushes the request with the state
 * appended (the list lives at least as long as the wait: with no worker popping it, it goes once
 * every request in it is past its deadline) and returns
 * `{'queued', ''}`; otherwise answers at once: `{'ok', <stored answer>}` when `seq` is the step
 * applied last, `{'at', next}`, or `{'gone', ''}` (closed, expired or another tenant's).
 */
export const SUBMIT_STEP_SCRIPT = `local s = redis.call('HMGET', KEYS[1], 'tenant', 'next', 'state', 'initial', 'last')
if s[1] ~= ARGV[1] then return {'gone', ''} end
local n = tonumber(s[2])
local seq = tonumber(ARGV[2])
if n == seq + 1 and s[5] and s[5] ~= '' then return {'ok', s[5]} end
if n ~= seq then return {'at', tostring(n)} end
local state = s[3]
if not state or state == '' then state = s[4] end
if not state or state == '' then state = 'null' end
local req = ARGV[3] .. state .. '}'
if ARGV[4] == '1' then redis.call('RPUSH', KEYS[2], req) else redis.call('LPUSH', KEYS[2], req) end
local ttl = redis.call('PTTL', KEYS[2])
if ttl == -1 or ttl < tonumber(ARGV[5]) then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return {'queued', ''}`;

/**
 * A reply on an api's reply channel: `<request id>|<kind>|<body>`, built by the scripts below without
 * decoding the answer. `ok`: body is the `SessionStepResult` JSON; `gone`: the session is closed or
 * expired; `at`: the session is at step `body`, neither this one nor the next; `failed`: body is the
 * JSON `{ code, message }` of an error computing the step.
 */
export type SessionStepReply =
  | { id: string; kind: 'ok'; answer: string }
  | { id: string; kind: 'gone' }
  | { id: string; kind: 'at'; next: number }
  | { id: string; kind: 'failed'; code: string; message: string; expected?: string; received?: string };

export function parseSessionStepReply(raw: string): SessionStepReply | null {
  const i = raw.indexOf('|');
  const j = raw.indexOf('|', i + 1);
  if (i < 0 || j < 0) return null;
  const id = raw.slice(0, i);
  const kind = raw.slice(i + 1, j);
  const body = raw.slice(j + 1);
  switch (kind) {
    case 'ok':
      return { id, kind, answer: body };
    case 'gone':
      return { id, kind };
    case 'at':
      return { id, kind, next: Number(body) };
    case 'failed':
      return { id, kind, ...(JSON.parse(body) as { code: string; message: string }) };
    default:
      return null;
  }
}

/** The `failed` reply of a step whose computation threw (`expected`/`received`: inputs the session cannot take). */
export const sessionFailedReply = (
  id: string,
  e: { code: string; message: string; expected?: string; received?: string },
): string =>
  `${id}|failed|${JSON.stringify({ code: e.code, message: e.message, expected: e.expected, received: e.received })}`;

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
 * Publishes `ARGV[4]|kind|body` on the reply channel ARGV[5]. A reply published while the api is
 * not subscribed is lost; the api's resend then finds the step applied and answers it at once.
 */
const REPLY_LUA = `local function reply(kind, body)
  redis.call('PUBLISH', ARGV[5], ARGV[4] .. '|' .. kind .. '|' .. body)
end
if redis.call('EXISTS', KEYS[1]) == 0 then reply('gone', '') return -2 end
local n = tonumber(redis.call('HGET', KEYS[1], 'next'))
local seq = tonumber(ARGV[1])
`;

/** Answers a step already applied (`next == seq + 1`) or not applicable from the hash; -1 when it is still to compute. */
const ANSWER_DONE_LUA = `if n == seq + 1 then reply('ok', redis.call('HGET', KEYS[1], 'last')) return n end
if n ~= seq then reply('at', tostring(n)) return n end
`;

/**
 * KEYS: the session hash. ARGV: seq, state JSON, answer JSON, request id, the api's reply channel. Applies the step when `next == seq` (new state, answer, next + 1, idle TTL renewed)
 * and replies `ok` with the answer; otherwise replies from the hash (the stored answer when the step
 * was applied already, `at` or `gone`) and changes nothing. Returns -1 when applied.
 */
export const COMMIT_STEP_SCRIPT = `${REPLY_LUA}if n == seq then
  redis.call('HSET', KEYS[1], 'next', n + 1, 'state', ARGV[2], 'last', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(redis.call('HGET', KEYS[1], 'idleTtlMs')))
  reply('ok', ARGV[3])
  return -1
end
${ANSWER_DONE_LUA}return n`;

/**
 * The check of a pushed-again request before computing it. KEYS and ARGV as COMMIT_STEP_SCRIPT
 * (ARGV 2 and 3 unused). Replies and returns `next` when the step needs no computing, else -1.
 */
export const ANSWER_IF_DONE_SCRIPT = `${REPLY_LUA}${ANSWER_DONE_LUA}return -1`;
