/**
 * Request rate limiting: a token bucket per tenant (per client address for requests without a
 * valid key), kept in Redis so every api process behind a balancer draws from the same bucket.
 * One EVALSHA per request; the script reads Redis's own clock, so api hosts need not agree on time.
 *
 * When Redis cannot be reached the request goes through (fail open): the routes themselves answer
 * 503 then, and an outage must not turn into a wall of 429s.
 */
import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { RedisKeys } from '@relu-lstm/jobs';
import type { RateLimit } from '../config';

/** KEYS[1] bucket; ARGV rate (tokens/s), burst. Returns { allowed 0|1, ms until a token }. */
const TAKE_TOKEN = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(v[1])
local ts = tonumber(v[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return { allowed, wait }
`;

export type RateSubject = { kind: 'tenant' | 'admin' | 'ip'; id: string };

export interface RateDecision {
  allowed: boolean;
  /** When refused: milliseconds until a token is available. */
  retryAfterMs: number;
}

type WithTakeToken = Redis & { takeToken(key: string, rate: number, burst: number): Promise<[number, number]> };

export class RateLimiter {
  private readonly log = new Logger('rate-limit');
  private lastWarned = 0;
  private readonly redis: WithTakeToken;

  constructor(
    redis: Redis,
    private readonly keys: RedisKeys,
  ) {
    redis.defineCommand('takeToken', { numberOfKeys: 1, lua: TAKE_TOKEN });
    this.redis = redis as WithTakeToken;
  }

  async take(subject: RateSubject, limit: RateLimit): Promise<RateDecision> {
    if (limit.rps <= 0) return { allowed: true, retryAfterMs: 0 };
    try {
      const key = this.keys.rateLimit(subject.kind, subject.id);
      const [allowed, wait] = await this.redis.takeToken(key, limit.rps, limit.burst);
      return { allowed: allowed === 1, retryAfterMs: wait };
    } catch (e) {
      if (Date.now() - this.lastWarned > 10_000)
        this.log.warn(`rate limiter unavailable, letting requests through: ${(e as Error).message}`);
      this.lastWarned = Date.now();
      return { allowed: true, retryAfterMs: 0 };
    }
  }
}
