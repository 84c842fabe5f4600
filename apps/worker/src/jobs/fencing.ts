/**
 * Fencing: only the worker that holds a job's BullMQ lock may write the job's checkpoints and
 * artifacts. A worker paused past its lock (SIGSTOP, a long GC, a frozen VM) wakes up believing it
 * still runs the job while another worker has taken it over; everything it writes from then on
 * must be refused.
 *
 * The lock is BullMQ's own key `<prefix>:<queue>:<jobId>:lock`, whose value is the token of the
 * attempt that holds it. Two checks are made against it:
 * - `holds`: a plain GET, asked just before a checkpoint file replaces the previous one (see
 *   `ArtifactStore.put`'s fence) and by the running job's watchdog;
 * - `choosePublication`: one Lua script that, only if the lock is still ours, either records our
 *   staged artifact set as *the* set of the job (`<p>:job:<id>:published`, set once) or returns
 *   the set recorded earlier by another attempt. That record is the publication: readers resolve
 *   the job's artifacts through it (`PublishedSets` of @relu-lstm/jobs), so exactly one set is
 *   ever visible per job (see ArtifactPublisher).
 */
import { Injectable } from '@nestjs/common';
import { RedisService } from '../redis';
import {
  PublicationSchema,
  choosePublication,
  lockKeyOf,
  setIfHolder,
  type LockedJob,
  type Publication,
} from './lock-fence';

export { LostLockError, stageIdOf, type LockHolder, type LockedJob, type Publication } from './lock-fence';

@Injectable()
export class JobFencing {
  constructor(private readonly redis: RedisService) {}

  /** Whether `token` still holds the job's lock. */
  async holds(job: LockedJob, token: string): Promise<boolean> {
    return (await this.redis.connection.get(lockKeyOf(job))) === token;
  }

  /** `SET key value` only while `token` holds the job's lock (one Lua step); false if it does not. */
  setIfHolder(job: LockedJob, token: string, key: string, value: string): Promise<boolean> {
    return setIfHolder(this.redis.connection, lockKeyOf(job), token, key, value);
  }

  /** The job's published set, if an attempt published one (read only: publishing is `choosePublication`). */
  async publication(jobId: string): Promise<Publication | null> {
    const raw = await this.redis.connection.get(this.redis.keys.published(jobId));
    return raw === null ? null : PublicationSchema.parse(JSON.parse(raw));
  }

  /** See `choosePublication` in lock-fence.ts. */
  choosePublication(job: LockedJob, token: string, mine: Publication): Promise<Publication | null> {
    return choosePublication(this.redis.connection, lockKeyOf(job), this.redis.keys.published(job.id!), token, mine);
  }
}
