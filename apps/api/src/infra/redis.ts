/**
 * The api's own Redis connection (records, event streams, heartbeats). It fails fast instead of
 * queueing commands while Redis is unreachable, so requests answer 503 at once rather than hang.
 */
import { Logger } from '@nestjs/common';
import { Redis } from 'ioredis';

export function connectRedis(url: string, name: string): Redis {
  const log = new Logger('redis');
  const redis = new Redis(url, {
    connectionName: name,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    lazyConnect: true,
  });
  let down = false;
  redis.on('error', (e) => {
    if (!down) log.warn(`redis: ${e.message}`);
    down = true;
  });
  redis.on('ready', () => {
    if (down) log.log('redis: connected again');
    down = false;
  });
  redis.connect().catch(() => undefined); // reconnects by itself; requests answer 503 meanwhile
  return redis;
}

/** Resolves when the connection is ready, or after `ms` (start-up goes on; /health tells). */
export function readyWithin(redis: Redis, ms: number): Promise<boolean> {
  if (redis.status === 'ready') return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      redis.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    redis.on('ready', onReady);
  });
}

/** Closes a connection whatever state it is in, without leaving timers behind. */
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  if (redis.status === 'ready') {
    await redis.quit().catch(() => redis.disconnect());
  } else {
    redis.disconnect();
  }
}
