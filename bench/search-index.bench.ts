/**
 * Redis memory of the job search index per job (job-index.ts): N jobs produced with `produceJob`
 * under a fresh prefix (the BullMQ `add` left out: its job hash is BullMQ's, not the index's), then
 * `MEMORY USAGE` summed over the tenant's listing and its type, name and tag sets, divided by N. One
 * row per labelling, side by side, with the job's meta for scale.
 *
 *   npm run bench:search                      # 10000 jobs per row
 *   SEARCH_BENCH_JOBS=100000 npm run bench:search
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import {
  CANONICAL_TRAIN_EXAMPLE,
  contract,
  planJob,
  produceJob,
  redisKeys,
  type JobOptions,
  type RedisKeys,
} from '@relu-lstm/jobs';

const N = Number(process.env.SEARCH_BENCH_JOBS ?? 10_000);
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

interface Labelling {
  label: string;
  options(i: number): JobOptions;
}

const LABELLINGS: Labelling[] = [
  { label: 'no name, no tags', options: () => ({ priority: 5 }) },
  {
    label: 'name shared by 100 jobs, 2 tags',
    options: (i) => ({
      name: `sweep-${Math.floor(i / 100)}`,
      tags: { project: `p${i % 5}`, lr: `0.0${i % 3}` },
      priority: 5,
    }),
  },
  {
    label: 'unique name, 4 tags (1 unique)',
    options: (i) => ({
      name: `run-${i}`,
      tags: { project: `p${i % 5}`, lr: `0.0${i % 3}`, seed: String(i), owner: 'ml-team' },
      priority: 5,
    }),
  },
];

async function keysMatching(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    out.push(...found);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

async function memoryOf(redis: Redis, keys: string[]): Promise<number> {
  let total = 0;
  for (let i = 0; i < keys.length; i += 500) {
    const p = redis.pipeline();
    for (const k of keys.slice(i, i + 500)) p.call('MEMORY', 'USAGE', k, 'SAMPLES', '0');
    for (const [, v] of (await p.exec()) ?? []) total += Number(v ?? 0);
  }
  return total;
}

async function measure(redis: Redis, l: Labelling): Promise<string[]> {
  const prefix = `bench-search-${randomUUID()}`;
  const keys: RedisKeys = redisKeys(prefix);
  const payload = contract.TrainPayload.parse(CANONICAL_TRAIN_EXAMPLE);
  const deps = { redis, keys, queue: () => ({ add: () => Promise.resolve() }) };
  try {
    for (let i = 0; i < N; i += 200) {
      const batch = [];
      for (let j = i; j < Math.min(N, i + 200); j++)
        batch.push(
          produceJob(deps, planJob('train', payload, { limits: contract.limits, tenant: 't', job: l.options(j) })),
        );
      await Promise.all(batch);
    }
    const listing = await memoryOf(redis, [keys.jobIndex('t')]);
    const filterKeys = await keysMatching(redis, `${prefix}:jobix:*`);
    const filters = await memoryOf(redis, filterKeys);
    const metas = await memoryOf(
      redis,
      (await keysMatching(redis, `${prefix}:job:*`)).filter((k) => !k.endsWith(':events')),
    );
    const perJob = (b: number) => (b / N).toFixed(1);
    return [
      l.label,
      perJob(listing),
      perJob(filters),
      perJob(listing + filters),
      String(filterKeys.length),
      perJob(metas),
    ];
  } finally {
    const all = await keysMatching(redis, `${prefix}:*`);
    for (let i = 0; i < all.length; i += 1000) await redis.unlink(...all.slice(i, i + 1000));
  }
}

function table(header: string[], rows: string[][]): string {
  const width = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const line = (cells: string[]) => `| ${cells.map((x, c) => x.padEnd(width[c])).join(' | ')} |`;
  return [line(header), line(width.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const redis = new Redis(REDIS_URL);
  try {
    const rows = [];
    for (const l of LABELLINGS) rows.push(await measure(redis, l));
    console.log(`Search index memory per job, ${N} jobs of one tenant (MEMORY USAGE ... SAMPLES 0, bytes / job)\n`);
    console.log(
      table(
        ['labels', 'listing (before)', 'type+name+tag sets', 'index total', 'index sets', 'job meta (for scale)'],
        rows,
      ),
    );
  } finally {
    await redis.quit();
  }
}

void main().catch((e) => {
  console.error(e);
  process.exit(1);
});
