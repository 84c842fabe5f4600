/**
 * BullMQ behind one thin adapter: the three queues of the prefix, and the few queue operations the
 * api needs. No policy here: what goes on which queue with which options is `planJob`'s.
 */
import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger } from '@nestjs/common';
import { Job, type Queue } from 'bullmq';
import { QUEUE_NAMES, type JobData, type JobQueue, type QueueName } from '@relu-lstm/jobs';

/** BullMQ's record of a job as the api reads it: never the payload, only its size. */
export interface QueuedJob {
  state: string;
  processedOn: number | null;
  finishedOn: number | null;
  attemptsStarted: number;
  attemptsMade: number;
  maxAttempts: number;
  progress: unknown;
  returnvalue: unknown;
  failedReason: string | undefined;
  /** Bytes of the stored payload (BullMQ's `data` field). */
  payloadBytes: number;
}

/** The fields of BullMQ's job hash behind `QueuedJob` (`ats`/`atm`: attempts started/made). */
const RECORD_FIELDS = [
  'opts',
  'progress',
  'returnvalue',
  'failedReason',
  'processedOn',
  'finishedOn',
  'ats',
  'atm',
  'attemptsMade',
] as const;

/** BullMQ states in which a job has not started and can simply be removed. */
const NOT_STARTED = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children', 'paused', 'wait']);

@Injectable()
export class JobQueues {
  private readonly queues: Record<QueueName, Queue<JobData>>;
  private readonly log = new Logger('queues');

  constructor(
    @InjectQueue('gpu') gpu: Queue<JobData>,
    @InjectQueue('cpu') cpu: Queue<JobData>,
    @InjectQueue('any') any: Queue<JobData>,
  ) {
    this.queues = { gpu, cpu, any };
    // Without a listener an 'error' event (Redis unreachable) would crash the process; requests
    // report the outage themselves (503).
    let lastWarned = 0;
    for (const q of [gpu, cpu, any]) {
      q.on('error', (e: Error) => {
        if (Date.now() - lastWarned > 10_000) this.log.warn(`queue ${q.name}: ${e.message}`);
        lastWarned = Date.now();
      });
    }
  }

  /** For `produceJob` of @relu-lstm/jobs. */
  queue(name: QueueName): JobQueue {
    return this.get(name) as unknown as JobQueue;
  }

  get(name: QueueName): Queue<JobData> {
    const q = this.queues[name];
    if (!q) throw new Error(`unknown queue ${name}; expected one of ${QUEUE_NAMES.join(', ')}`);
    return q;
  }

  /**
   * A job's state and record without its payload: the hash fields a view needs, and the payload's
   * size (HSTRLEN). A status read costs the same for a 10 MB inline payload as for a tiny one.
   */
  async getJob(queue: QueueName, id: string): Promise<QueuedJob | null> {
    const q = this.get(queue);
    const client = await q.backend.client;
    const key = q.backend.toKey(id);
    const res = await client
      .multi()
      .runCommand('hmget', [key, ...RECORD_FIELDS])
      .runCommand('hstrlen', [key, 'data'])
      .exec();
    const failed = res?.find(([err]: [Error | null, unknown]) => err);
    if (!res || failed) throw failed?.[0] ?? new Error('MULTI aborted');
    const raw = Object.fromEntries(RECORD_FIELDS.map((f, i) => [f, (res[0][1] as Array<string | null>)[i]])) as Record<
      (typeof RECORD_FIELDS)[number],
      string | null
    >;
    if (raw.opts === null) return null;
    const state = await q.getJobState(id);
    if (state === 'unknown') return null;
    const int = (v: string | null) => (v ? parseInt(v, 10) : null);
    return {
      state,
      processedOn: int(raw.processedOn),
      finishedOn: int(raw.finishedOn),
      attemptsStarted: int(raw.ats) ?? 0,
      attemptsMade: int(raw.attemptsMade ?? raw.atm) ?? 0,
      maxAttempts: (Job.optsFromJSON(raw.opts) as { attempts?: number }).attempts ?? 1,
      progress: raw.progress === null ? 0 : JSON.parse(raw.progress),
      returnvalue: raw.returnvalue === null ? null : JSON.parse(raw.returnvalue),
      failedReason: raw.failedReason ?? undefined,
      payloadBytes: res[1][1] as number,
    };
  }

  isNotStarted(state: string): boolean {
    return NOT_STARTED.has(state);
  }

  /** Removes a job that has not started; false when it is locked (a worker took it meanwhile). */
  async removeIfNotStarted(queue: QueueName, id: string): Promise<boolean> {
    const state = await this.get(queue).getJobState(id);
    if (!this.isNotStarted(state)) return false;
    return (await this.get(queue).remove(id)) === 1;
  }
}
