/**
 * Putting a sweep on the queues: the records of every trial (each takes its place in the tenant's
 * live set, like any job: a sweep's trials count against the job quota), the sweep's record, then
 * one BullMQ `FlowProducer.add` of the parent with the trials as its children. Anything that fails
 * undoes what was written, so a refused sweep queues nothing and holds no place.
 */
import { removeJobRecords, writeJobRecords, type LiveQuota, type ProducerDeps } from './producer';
import type { PlannedJob, PlannedJobOptions } from './queues';
import { SWEEP_JOB_NAME, SWEEP_QUEUE, SweepRecordSchema, type SweepJobData, type SweepRecord } from './sweeps';

/** One node of a BullMQ flow, as `FlowProducer.add` takes it (structurally its `FlowJob`). */
export interface FlowNode {
  name: string;
  queueName: string;
  data: unknown;
  opts: Partial<PlannedJobOptions> & { jobId: string; ignoreDependencyOnFailure?: boolean };
  children?: FlowNode[];
}

/** The part of a BullMQ `FlowProducer` the sweep producer uses (same prefix as the keys). */
export interface SweepFlow {
  add(flow: FlowNode): Promise<unknown>;
}

export interface SweepProducerDeps extends Pick<ProducerDeps, 'redis' | 'keys' | 'streamMaxLen'> {
  flow: SweepFlow;
}

/** The flow of a sweep: the parent on `SWEEP_QUEUE`, a child per trial whose failure does not block it. */
export function sweepFlow(
  record: SweepRecord,
  trials: ReadonlyArray<PlannedJob<'train'> & { bullPriority: number }>,
  policy: { keepSec: number },
): FlowNode {
  const data: SweepJobData = { sweepId: record.id, tenant: record.tenant };
  return {
    name: SWEEP_JOB_NAME,
    queueName: SWEEP_QUEUE,
    data,
    opts: { jobId: record.id, attempts: 3, removeOnComplete: { age: policy.keepSec, count: 10_000 } },
    children: trials.map((t) => ({
      name: t.name,
      queueName: t.queue,
      data: t.data,
      // A failed or cancelled trial is one result among others: the sweep still ends.
      opts: { ...t.opts, priority: t.bullPriority, ignoreDependencyOnFailure: true },
    })),
  };
}

/** Writes the records and queues the flow; `quota` as `produceJob`'s, per trial. */
export async function produceSweep(
  deps: SweepProducerDeps,
  o: { record: SweepRecord; trials: ReadonlyArray<PlannedJob<'train'>>; keepSec: number },
  quota?: LiveQuota,
): Promise<void> {
  const written: Array<PlannedJob<'train'> & { bullPriority: number }> = [];
  const sweepKey = deps.keys.sweep(o.record.id);
  try {
    for (const t of o.trials) {
      const { bullPriority } = await writeJobRecords(deps, t, quota);
      written.push({ ...t, bullPriority });
    }
    await deps.redis.set(sweepKey, JSON.stringify(SweepRecordSchema.parse(o.record)), 'EX', o.keepSec);
    await deps.flow.add(sweepFlow(o.record, written, { keepSec: o.keepSec }));
  } catch (e) {
    await Promise.all(written.map((t) => removeJobRecords(deps, t, quota)));
    await deps.redis.del(sweepKey).catch(() => undefined);
    throw e;
  }
}
