/**
 * Publishes a finished job's artifacts exactly once, fenced by the job's lock (fencing.ts):
 *   1. stage: every file is staged (`ArtifactStore.stage`) under a hash of this attempt's token;
 *   2. choose: one Lua step checks that this attempt still holds the lock and records this stage
 *      as the job's artifact set, unless another attempt's set was recorded first (then that one
 *      is the set, and its result the job's result);
 *   3. publish: the chosen stage is published (`publishStaged`), the stage and the checkpoint go.
 * A worker that lost the lock writes nothing (its stage is discarded) and gets `LostLockError`. A
 * worker paused between 2 and 3 cannot leave the job half-published: the next holder of the lock
 * finds the record and finishes step 3 with the very same files; the paused one, once awake, only
 * finds them published (publishing a stage is idempotent, see artifacts.ts). So a job has one
 * artifact set and one result whatever the processes do.
 */
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { ArtifactStore } from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { ARTIFACT_STORE } from '../redis';
import { CheckpointStore } from './checkpoints';
import { JobFencing, LostLockError, stageIdOf, type Publication } from './fencing';
import type { JobContext } from './job-handler';
import { JobEvents } from './job-events';

@Injectable()
export class ArtifactPublisher {
  private readonly log = new Logger('Publisher');

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    @Inject(ARTIFACT_STORE) private readonly artifacts: ArtifactStore,
    private readonly fencing: JobFencing,
    private readonly checkpoints: CheckpointStore,
    private readonly events: JobEvents,
  ) {}

  /**
   * Publishes `files` (name -> content, in the order given) with `result`, or the set an earlier
   * attempt chose; returns the chosen set's result, checked by `parse`.
   */
  async publish<R>(
    ctx: Pick<JobContext, 'job' | 'jobId' | 'token' | 'attempt'>,
    files: ReadonlyArray<readonly [string, string | Uint8Array]>,
    result: R,
    parse: (u: unknown) => R,
  ): Promise<R> {
    const { job, jobId, token } = ctx;
    const stage = stageIdOf(token);
    try {
      for (const [name, data] of files) await this.artifacts.stage(jobId, stage, name, data);
    } catch (e) {
      await this.artifacts.discardStaged(jobId, stage).catch(() => undefined);
      throw e;
    }
    const mine: Publication = {
      stage,
      names: files.map(([n]) => n),
      attempt: ctx.attempt,
      workerId: this.config.workerId,
      at: Date.now(),
      result,
    };
    const chosen = await this.fencing.choosePublication(job, token, mine);
    if (chosen === null) {
      await this.artifacts.discardStaged(jobId, stage).catch(() => undefined);
      this.log.warn(`job ${jobId}: not publishing its artifacts: the lock is no longer this attempt's`);
      throw new LostLockError(jobId, 'its artifacts were not published');
    }
    if (chosen.stage !== stage) {
      await this.artifacts.discardStaged(jobId, stage).catch(() => undefined);
      await this.events.info(
        jobId,
        'published_earlier',
        `attempt ${chosen.attempt} (worker ${chosen.workerId}) had chosen its artifact set already; publishing that one`,
        {
          attempt: chosen.attempt,
          workerId: chosen.workerId,
        },
      );
    }
    await this.artifacts.publishStaged(jobId, chosen.stage, chosen.names);
    await this.checkpoints.remove(jobId);
    return parse(chosen.result);
  }
}
