/**
 * BullMQ behind one thin adapter: the three queues of the prefix, and the few queue operations the
 * api needs. No policy here: what goes on which queue with which options is `planJob`'s.
 */
import { InjectQueue } from '@nestjs/bullmq';
import { Injectable, Logger } from '@nestjs/common';
import type { Job, Queue } from 'bullmq';
import { QUEUE_NAMES, type JobData, type JobQueue, type QueueName, type TrainResult, type InferResult } from '@relu-lstm/jobs';

export type RunnerJob = Job<JobData, TrainResult | InferResult, string>;

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

  async getJob(queue: QueueName, id: string): Promise<{ job: RunnerJob; state: string } | null> {
    const job = (await this.get(queue).getJob(id)) as RunnerJob | undefined;
    if (!job) return null;
    const state = await job.getState();
    if (state === 'unknown') return null;
    return { job, state };
  }

  isNotStarted(state: string): boolean {
    return NOT_STARTED.has(state);
  }

  /** Removes a job that has not started; false when it is locked (a worker took it meanwhile). */
  async removeIfNotStarted(queue: QueueName, id: string): Promise<boolean> {
    const found = await this.getJob(queue, id);
    if (!found || !this.isNotStarted(found.state)) return false;
    return (await this.get(queue).remove(id)) === 1;
  }
}
