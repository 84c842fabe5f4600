/** Percentiles, the machine's description and plain-text tables for the runner benchmarks. */
import { readFileSync, readdirSync } from 'node:fs';
import * as os from 'node:os';
import type { Redis } from 'ioredis';

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export const median = (xs: readonly number[]): number => percentile(xs, 50);

export async function machineDescription(redis: Redis): Promise<string> {
  const cpus = os.cpus();
  const info = await redis.info('server').catch(() => '');
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const load = os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
  return [
    `machine: ${cpus[0]?.model.trim() ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, ${os.type()} ${os.release()}`,
    `node ${process.version}, redis ${redisVersion}, load average at start ${load}`,
  ].join('\n');
}

export const loadAverage = (): string =>
  os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/** Right-aligned columns except the first; `rows[0]` is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows
    .map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('   '))
    .join('\n');
}

export const fmt = (x: number, digits = 1): string => (Number.isFinite(x) ? x.toFixed(digits) : '-');

/** Clock ticks per second of /proc's CPU times (USER_HZ; 100 on every mainstream Linux build). */
const TICKS_PER_SEC = 100;

function childrenOf(pid: number): number[] {
  try {
    const tasks = readdirSync(`/proc/${pid}/task`);
    return tasks.flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * User + system CPU time, in ms, used so far by a process and its live descendants (a worker and
 * its engine child), from /proc; null where there is no /proc (then the CPU columns are omitted).
 */
export function cpuMsOfTree(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SEC; // utime, stime
    return childrenOf(pid).reduce((sum, c) => sum + (cpuMsOfTree(c) ?? 0), own);
  } catch {
    return null;
  }
}
