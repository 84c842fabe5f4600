/**
 * A job's resumable checkpoint, parent side. Three pieces, written in this order so that a crash
 * between any two leaves something consistent:
 *   1. `checkpoint-metrics.json`  the metric points up to the checkpoint (for metrics.csv)
 *   2. `checkpoint.safetensors`   the library's encoded TrainingState (the source of truth)
 *   3. `keys.checkpoint(id)`      a `CheckpointPointer` in Redis (informational: epoch, step, attempt)
 * On resume the metrics are cut at the step the engine actually resumed from, so a metrics file
 * newer than the checkpoint (crash between 1 and 2) does no harm.
 *
 * Fenced (fencing.ts): each file replaces the previous one only if the writer still holds the job's
 * lock, checked just before it does (`ArtifactStore.put`'s fence), and the pointer is set in the
 * same Lua step as that check.
 * A writer that lost the lock gets `FencedWriteError` and leaves the holder's checkpoint alone.
 */
import { Inject, Injectable } from '@nestjs/common';
import {
  CHECKPOINT_ARTIFACT,
  CHECKPOINT_METRICS_ARTIFACT,
  CheckpointPointerSchema,
  FencedWriteError,
  ProgressEventSchema,
  type ArtifactStore,
  type CheckpointPointer,
  type ProgressEvent,
} from '@relu-lstm/jobs';
import { z } from 'zod';
import { ARTIFACT_STORE, RedisService } from '../redis';
import { JobFencing, type LockHolder } from './fencing';

export interface FoundCheckpoint {
  artifact: string;
  pointer: CheckpointPointer | null;
  /** Points saved with it (may run past the checkpoint; cut them at the resumed step). */
  metrics: ProgressEvent[];
}

@Injectable()
export class CheckpointStore {
  constructor(
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    private readonly redis: RedisService,
    private readonly fencing: JobFencing,
  ) {}

  async find(jobId: string): Promise<FoundCheckpoint | null> {
    if (!(await this.artifacts.exists(jobId, CHECKPOINT_ARTIFACT))) return null;
    let pointer: CheckpointPointer | null = null;
    const raw = await this.redis.connection.get(this.redis.keys.checkpoint(jobId));
    if (raw) {
      const r = CheckpointPointerSchema.safeParse(safeJson(raw));
      if (r.success) pointer = r.data;
    }
    let metrics: ProgressEvent[] = [];
    try {
      const r = z
        .array(ProgressEventSchema)
        .safeParse(safeJson((await this.artifacts.get(jobId, CHECKPOINT_METRICS_ARTIFACT)).toString('utf8')));
      if (r.success) metrics = r.data;
    } catch {
      // no metrics saved with it: metrics.csv starts at the resume
    }
    return { artifact: CHECKPOINT_ARTIFACT, pointer, metrics };
  }

  async save(
    jobId: string,
    bytes: Uint8Array,
    metrics: ProgressEvent[],
    at: { epoch: number; step: number; attempt: number },
    holder: LockHolder,
  ): Promise<CheckpointPointer> {
    const fence = () => this.fencing.holds(holder.job, holder.token);
    await this.artifacts.put(jobId, CHECKPOINT_METRICS_ARTIFACT, JSON.stringify(metrics), { fence });
    await this.artifacts.put(jobId, CHECKPOINT_ARTIFACT, bytes, { fence });
    const pointer: CheckpointPointer = {
      name: CHECKPOINT_ARTIFACT,
      epoch: at.epoch,
      step: at.step,
      attempt: at.attempt,
      at: Date.now(),
    };
    if (
      !(await this.fencing.setIfHolder(
        holder.job,
        holder.token,
        this.redis.keys.checkpoint(jobId),
        JSON.stringify(pointer),
      ))
    ) {
      throw new FencedWriteError(jobId, 'checkpoint pointer');
    }
    return pointer;
  }

  async remove(jobId: string): Promise<void> {
    await this.redis.connection.del(this.redis.keys.checkpoint(jobId));
    await this.artifacts.remove(jobId, CHECKPOINT_ARTIFACT);
    await this.artifacts.remove(jobId, CHECKPOINT_METRICS_ARTIFACT);
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
