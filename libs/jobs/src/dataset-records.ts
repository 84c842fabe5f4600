/**
 * A dataset's records in Redis besides its meta (see the key table in keys.ts): the tenant's index
 * and byte count (the api's quota), the jobs that name it and its last use. Removing them is one
 * script, shared by DELETE /v1/datasets/:id and the worker's retention sweep.
 */
import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys';

// KEYS: meta, index, bytes, jobs, use. ARGV: id, bytes. 0: a job names it (entered its set since the check).
const REMOVE_DATASET = `
if redis.call('ZCARD', KEYS[4]) > 0 then return 0 end
if redis.call('DEL', KEYS[1]) == 0 then return 0 end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], ARGV[2])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
`;

/**
 * Removes the dataset's records if no job names it (its jobs set empty: the caller prunes ended
 * jobs first); false when one does, or when it is gone already. The caller then removes the arrays.
 */
export async function removeDatasetRecords(
  redis: Redis,
  keys: RedisKeys,
  d: { id: string; tenant: string; bytes: number },
): Promise<boolean> {
  const res = await redis.eval(
    REMOVE_DATASET,
    5,
    keys.dataset(d.id),
    keys.datasetIndex(d.tenant),
    keys.datasetBytes(d.tenant),
    keys.datasetJobs(d.id),
    keys.datasetUse(),
    d.id,
    d.bytes,
  );
  return res === 1;
}
