/**
 * Which attempt's staged objects are a job's artifacts. A worker stages every object of a finished
 * job under its attempt's key (`ArtifactStore.stage`), then one Lua step records the set at
 * `keys.published(jobId)` only while its lock token holds the job (apps/worker lock-fence.ts); that
 * record is the publication, nothing is copied or renamed. Every read of an `ArtifactStore` resolves
 * the job through `PublishedSets` first (`artifactSource`), so a fenced-off attempt's objects, or a
 * stage left by a crash before the record, are never listed nor served.
 */
import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { RedisKeys } from './keys';

/**
 * The part of the published record a reader needs. `layout: 'attempt'`: the artifacts are the
 * objects `names` of stage `stage`; absent (records of the earlier copy-on-publish workers): the
 * stage was copied to the job's plain names, which are read as they are.
 */
export const PublishedSetSchema = z.object({
  stage: z.string(),
  names: z.array(z.string()),
  layout: z.literal('attempt').optional(),
});
export type PublishedSet = z.infer<typeof PublishedSetSchema>;

/** The layout the worker writes now (see `PublishedSet.layout`). */
export const ATTEMPT_LAYOUT = 'attempt' as const;

/** Where readers learn a job's published set. */
export interface PublishedSets {
  /** The job's published set, or null when none was published. */
  get(jobId: string): Promise<PublishedSet | null>;
}

/** The published records in Redis (`keys.published`), as the worker's fencing step writes them. */
export class RedisPublishedSets implements PublishedSets {
  constructor(
    private readonly redis: Pick<Redis, 'get'>,
    private readonly keys: RedisKeys,
  ) {}

  async get(jobId: string): Promise<PublishedSet | null> {
    const raw = await this.redis.get(this.keys.published(jobId));
    if (raw === null) return null;
    const r = PublishedSetSchema.safeParse(JSON.parse(raw));
    if (!r.success) throw new Error(`published record of job ${jobId}: ${r.error.message}`);
    return r.data;
  }
}

/**
 * For a process that only writes and reads plain `put` artifacts and never published sets (tools,
 * benchmarks, a store's own tests): every job reads as unpublished.
 */
export const NO_PUBLISHED_SETS: PublishedSets = { get: () => Promise.resolve(null) };

/**
 * Where a job's artifacts are read from: the published attempt's stage (only its named objects), or
 * the job's plain objects (`put`, and the sets of copy-on-publish workers) when nothing was published
 * in the attempt layout.
 */
export type ArtifactSource = { stage: string; names: ReadonlySet<string> } | { stage: null };

export async function artifactSource(sets: PublishedSets, jobId: string): Promise<ArtifactSource> {
  const set = await sets.get(jobId);
  if (set === null || set.layout !== ATTEMPT_LAYOUT) return { stage: null };
  return { stage: set.stage, names: new Set(set.names) };
}
