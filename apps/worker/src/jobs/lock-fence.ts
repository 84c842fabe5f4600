/**
 * The Redis side of fencing (see fencing.ts), without NestJS so it can be tested on its own: BullMQ's
 * lock key of a job, and two Lua steps that act only while a given token holds that lock.
 */
import { createHash } from 'node:crypto';
import type { Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { PublishedSetSchema, bullJobKey } from '@relu-lstm/jobs';
import { z } from 'zod';

/**
 * The published set of a job (what readers resolve, `PublishedSet` of @relu-lstm/jobs), written by
 * which attempt, and its result. It has no TTL of its own: it lives as long as the job's artifacts,
 * taking the job's keep-age with its other keys (`jobRecordKeys`), or swept as a stray key once the
 * job's meta is gone.
 */
export const PublicationSchema = PublishedSetSchema.extend({
  attempt: z.number().int(),
  workerId: z.string(),
  at: z.number(),
  result: z.unknown(),
});
export type Publication = z.infer<typeof PublicationSchema>;

/** KEYS: lock, published. ARGV: token, record. Returns the chosen record, or nil if the lock is not ours. */
const CHOOSE_PUBLICATION = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local chosen = redis.call('GET', KEYS[2])
if chosen then return chosen end
redis.call('SET', KEYS[2], ARGV[2])
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
 * Publishes: records `mine` under `publishedKey` if `token` holds the lock and no set was chosen
 * yet; returns the chosen set (ours or an earlier one), or null when the lock is not ours (then
 * nothing is written and the record, if any, stays as it was).
 */
export async function choosePublication(
  redis: Redis,
  lockKey: string,
  publishedKey: string,
  token: string,
  mine: Publication,
): Promise<Publication | null> {
  const raw = (await redis.eval(CHOOSE_PUBLICATION, 2, lockKey, publishedKey, token, JSON.stringify(mine))) as
    string | null;
  return raw === null ? null : PublicationSchema.parse(JSON.parse(raw));
}

/** A file-name-safe id of an attempt's lock token: the attempt key its objects are staged under. */
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
