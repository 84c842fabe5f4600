/**
 * The job search index: besides the tenant's listing (`keys.jobIndex`, every job by creation time),
 * one sorted set per type, per name and per tag (`keys.jobFilterIndex`), each scored by creation
 * time. The producer adds a job to all of its sets in the script that writes its records; the
 * retention sweep removes the entries of the jobs it removes (`sweepFilterIndexes`, retention.ts).
 *
 * A search walks the smallest of the sets its filters name, newest first from the cursor, and keeps
 * the entries every other set also holds (one ZMSCORE per other set per chunk): the work per page is
 * bounded by the entries walked, never the tenant's whole listing. `state` is not indexed (it changes
 * inside BullMQ's scripts, where no index of ours could follow it): the api filters it on the
 * candidates, and bounds the candidates one request looks at (docs/api.md, "Listing and search").
 */
import type { Redis } from 'ioredis';
import type { JobMeta, JobType } from './events';
import type { JobIndexFilter, RedisKeys } from './keys';

/** The filters of a search; every one given must match. */
export interface JobFilters {
  type?: JobType;
  name?: string;
  tags?: ReadonlyArray<readonly [string, string]>;
}

export interface IndexEntry {
  score: number;
  id: string;
}

/** The filter indexes a job is in (not the tenant listing). */
export function jobFilterIndexesOf(
  keys: RedisKeys,
  meta: Pick<JobMeta, 'tenant' | 'type' | 'name' | 'tags'>,
): string[] {
  return filterIndexKeys(keys, meta.tenant, {
    type: meta.type,
    name: meta.name,
    tags: Object.entries(meta.tags ?? {}),
  });
}

/** The sets a search with `filters` intersects; none given: the tenant's listing. */
export function searchKeys(keys: RedisKeys, tenant: string, filters: JobFilters): string[] {
  const filtered = filterIndexKeys(keys, tenant, filters);
  return filtered.length ? filtered : [keys.jobIndex(tenant)];
}

function filterIndexKeys(keys: RedisKeys, tenant: string, f: JobFilters): string[] {
  const list: JobIndexFilter[] = [];
  if (f.type !== undefined) list.push({ type: f.type });
  if (f.name !== undefined) list.push({ name: f.name });
  for (const tag of f.tags ?? []) list.push({ tag });
  return [...new Set(list.map((x) => keys.jobFilterIndex(tenant, x)))];
}

export interface IndexWalk {
  /** The sets to intersect (`searchKeys`). */
  keys: string[];
  /** Newest creation time to return (the cursor's), inclusive; `+inf` for none. */
  maxScore: number | '+inf';
  /** Oldest creation time (`since`); `-inf` for none. */
  minScore: number | '-inf';
  /** Entries of the first set read per round trip. */
  chunk: number;
}

/** A walked entry of the smallest set, and whether every other set holds it too. */
export interface WalkedEntry extends IndexEntry {
  match: boolean;
}

/**
 * Chunks of the smallest set's entries newest first within the score range, each marked with
 * whether it is in every set. Ends after the last chunk (an empty set ends at once).
 */
export async function* walkJobIndex(redis: Redis, w: IndexWalk): AsyncGenerator<WalkedEntry[], void, undefined> {
  const cards = await Promise.all(w.keys.map((k) => redis.zcard(k)));
  if (cards.some((c) => c === 0)) return;
  const smallest = cards.indexOf(Math.min(...cards));
  const driver = w.keys[smallest];
  const others = w.keys.filter((_, i) => i !== smallest);
  for (let offset = 0; ;) {
    const raw = await redis.zrevrangebyscore(driver, w.maxScore, w.minScore, 'WITHSCORES', 'LIMIT', offset, w.chunk);
    offset += raw.length / 2;
    const entries: WalkedEntry[] = [];
    for (let i = 0; i < raw.length; i += 2) entries.push({ id: raw[i], score: Number(raw[i + 1]), match: true });
    if (entries.length && others.length) await markMatches(redis, others, entries);
    if (entries.length) yield entries;
    if (entries.length < w.chunk) return;
  }
}

async function markMatches(redis: Redis, others: string[], entries: WalkedEntry[]): Promise<void> {
  const ids = entries.map((e) => e.id);
  const p = redis.pipeline();
  for (const k of others) p.zmscore(k, ...ids);
  const res = (await p.exec()) ?? [];
  for (const [err, scores] of res) {
    if (err) throw err;
    (scores as Array<string | null>).forEach((s, i) => {
      if (s === null) entries[i].match = false;
    });
  }
}
