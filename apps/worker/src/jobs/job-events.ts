/**
 * Appends to a job's event stream (`RedisJobEventStream` of @relu-lstm/jobs). A failed append is
 * logged, never thrown: losing one event must not fail a training that is otherwise fine.
 */
import { Injectable, Logger } from '@nestjs/common';
import type { JobEvent, JobState, LogEvent, StateEvent } from '@relu-lstm/jobs';
import { RedisService } from '../redis';

@Injectable()
export class JobEvents {
  private readonly log = new Logger('JobEvents');

  constructor(private readonly redis: RedisService) {}

  async append(jobId: string, event: JobEvent): Promise<void> {
    try {
      await this.redis.events.append(jobId, event);
    } catch (e) {
      this.log.warn(`job ${jobId}: could not append a '${event.type}' event: ${(e as Error).message}`);
    }
  }

  state(jobId: string, state: JobState, extra: Omit<StateEvent, 'type' | 'at' | 'state'> = {}): Promise<void> {
    return this.append(jobId, { type: 'state', at: Date.now(), state, ...extra });
  }

  info(
    jobId: string,
    code: string,
    message: string,
    data?: Record<string, unknown>,
    level: LogEvent['level'] = 'info',
  ): Promise<void> {
    return this.append(jobId, { type: 'log', at: Date.now(), level, code, message, ...(data ? { data } : {}) });
  }
}
