/**
 * The Redis side of fencing (see fencing.ts), without NestJS so it can be tested on its own: BullMQ's
 * lock key of a job, and two Lua steps that act only while a given token holds that lock.
 */
import { createHash } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { bullJobKey } from '@relu-lstm/jobs';
import { z } from 'zod';

/**
 * A bound on the record of the chosen artifact set should its job never be recorded as finished; once it
 * is, the record takes the job's keep-age with its other keys (`jobRecordKeys` of @relu-lstm/jobs).
 */
export const PUBLICATION_TTL_MS = 7 * 24 * 3600 * 1000;

/** The artifact set chosen for a job: which stage, written by which attempt, and its result. */
export const PublicationSchema = z.object({
  stage: z.string(),
  names: z.array(z.string()),
  attempt: z.number().int(),
  workerId: z.string(),
  at: z.number(),
  result: z.unknown(),
});
export type Publication = z.infer<typeof PublicationSchema>;

/** KEYS: lock, published. ARGV: token, record, ttl. Returns the chosen record, or nil if the lock is not ours. */
const CHOOSE_PUBLICATION = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local chosen = redis.call('GET', KEYS[2])
if chosen then return chosen end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
`;

/** KEYS: lock, key. ARGV: token, value. Sets key only while the lock is ours; 1 if set. */
const SET_IF_HOLDER = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
`;

export type LockedJob = Pick<Job, 'id' | 'prefix' | 'queueName'>;

/** The attempt that writes: the job and the lock token it was given. */
export interface LockHolder {
  job: LockedJob;
  token: string;
}

/** BullMQ's lock key of the job, `<prefix>:<queue>:<id>:lock` (its value is the holder's token). */
export function lockKeyOf(job: LockedJob): string {
  return `${bullJobKey(job.prefix, job.queueName, job.id!)}:lock`;
}

/** `SET key value` in the same step as checking that `token` holds the lock; false if it does not. */
export async function setIfHolder(
  redis: Redis,
  lockKey: string,
  token: string,
  key: string,
  value: string,
): Promise<boolean> {
  return (await redis.eval(SET_IF_HOLDER, 2, lockKey, key, token, value)) === 1;
}

/**
 * Records `mine` under `publishedKey` if `token` holds the lock and no set was chosen yet; returns
 * the chosen set (ours or an earlier one), or null when the lock is not ours (write nothing).
 */
export async function choosePublication(
  redis: Redis,
  lockKey: string,
  publishedKey: string,
  token: string,
  mine: Publication,
  ttlMs = PUBLICATION_TTL_MS,
): Promise<Publication | null> {
  const raw = (await redis.eval(
    CHOOSE_PUBLICATION,
    2,
    lockKey,
    publishedKey,
    token,
    JSON.stringify(mine),
    String(ttlMs),
  )) as string | null;
  return raw === null ? null : PublicationSchema.parse(JSON.parse(raw));
}

/** A file-name-safe id of an attempt's lock token, for its staging directory. */
export function stageIdOf(token: string): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 24);
}

/** The worker lost the job's lock: another worker has it (or will). Nothing of this attempt is kept. */
export class LostLockError extends Error {
  constructor(
    readonly jobId: string,
    what: string,
  ) {
    super(`job ${jobId}: lost the job's lock (another worker holds it or will take it); ${what}`);
    this.name = 'LostLockError';
  }
}
