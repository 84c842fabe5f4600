/**
 * The engine's memory budget (LIMIT_MAX_JOB_MEMORY_MB), enforced from outside it: the engine is
 * forked with its V8 heap bounded by the budget, and a watchdog in the worker reads the engine's
 * resident set (Linux `/proc/<pid>/status`, VmRSS) every ENGINE_MEMORY_POLL_MS and kills it past
 * the budget. Tensors live outside the V8 heap (wasm memory, ArrayBuffers, native buffers), so the
 * resident set is what bounds them. The run in flight then fails with `EngineOutOfMemoryError`,
 * which the handlers turn into `resource_exhausted` (not retried); the next run forks a new engine.
 */
import { readFileSync } from 'node:fs';
import type { JobErrorInput } from '@relu-lstm/jobs';

const MB = 1024 ** 2;

/** The engine ran past its memory budget and was killed (or its V8 heap ran out). */
export class EngineOutOfMemoryError extends Error {
  constructor(
    readonly what: 'resident set' | 'V8 heap',
    readonly limitMb: number,
    readonly rssBytes: number | null,
  ) {
    super(
      what === 'resident set'
        ? `the engine's resident set reached ${Math.round((rssBytes ?? 0) / MB)} MB, over the job memory budget of ${limitMb} MB (LIMIT_MAX_JOB_MEMORY_MB); the engine was killed`
        : `the engine ran out of its V8 heap (--max-old-space-size=${limitMb}, from LIMIT_MAX_JOB_MEMORY_MB)`,
    );
    this.name = 'EngineOutOfMemoryError';
  }

  toJobError(): JobErrorInput {
    return {
      code: 'resource_exhausted',
      message: this.message,
      retryable: false,
      details: {
        what: this.what,
        limitMb: this.limitMb,
        ...(this.rssBytes !== null ? { rssMb: Math.round(this.rssBytes / MB) } : {}),
      },
    };
  }
}

/** Node flags that bound the engine's V8 heap by the budget. */
export function engineHeapFlags(limitMb: number): string[] {
  return [`--max-old-space-size=${limitMb}`];
}

/** A process's resident set in bytes (`VmRSS`), or null where /proc cannot tell (not Linux, exited). */
export function residentBytes(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** A Node process that dies of a V8 heap limit aborts (SIGABRT) after "JavaScript heap out of memory". */
export function exitedOfHeapLimit(signal: NodeJS.Signals | null, code: number | null): boolean {
  return signal === 'SIGABRT' || code === 134;
}

export interface WatchOptions {
  pid: number;
  limitMb: number;
  pollMs: number;
  /** Called once, with the resident set seen, when it passes the limit. */
  onExceeded: (rssBytes: number) => void;
}

/** Polls the resident set of `pid` until stopped or past the limit; returns the stop function. */
export function watchResidentSet(o: WatchOptions): () => void {
  const limit = o.limitMb * MB;
  const timer = setInterval(() => {
    const rss = residentBytes(o.pid);
    if (rss !== null && rss > limit) {
      clearInterval(timer);
      o.onExceeded(rss);
    }
  }, o.pollMs);
  timer.unref();
  return () => clearInterval(timer);
}
