/**
 * Publishes a finished job's artifacts exactly once, fenced by the job's lock (fencing.ts), with no
 * copy or rename on any store:
 *   1. stage: every object is written (`ArtifactStore.stage`) under this attempt's key, a hash of
 *      its lock token, where no reader looks;
 *   2. publish: one Lua step checks that this attempt still holds the lock and records this stage
 *      as the job's published set (`keys.published`), unless another attempt's set was recorded
 *      first (then that one is the set, and its result the job's result). From that step on every
 *      reader of the store resolves the job to the recorded stage (published-sets.ts of @relu-lstm/jobs);
 *   3. tidy: the other stages, the temporaries and the checkpoint go (nothing a reader sees).
 * A worker that lost the lock records nothing (its stage is discarded) and gets `LostLockError`; its
 * stage, should it be killed first, is never read and goes with the job (retention). A crash
 * after 2 leaves the job published: the next attempt runs nothing (`earlier`), completes with the
 * recorded result and tidies.
 */
import { Inject, Injectable, Logger } from '@nestjs/common';
import { ATTEMPT_LAYOUT, type ArtifactStore } from '@relu-lstm/jobs';
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
   * Publishes `files` (name -> content, in the order given) with `result`, or keeps the set an
   * earlier attempt published; returns the published set's result, checked by `parse`.
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
      layout: ATTEMPT_LAYOUT,
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
      await this.sayPublishedEarlier(jobId, chosen);
    }
    await this.tidy(jobId, chosen.stage);
    return parse(chosen.result);
  }

  /**
   * The result of the set an earlier attempt published, should one have died after publishing and
   * before its job was recorded complete (the next attempt then has nothing to run: the job's
   * artifacts and result are final, and its checkpoint is no longer read); null when none did.
   */
  async earlier<R>(ctx: Pick<JobContext, 'jobId'>, parse: (u: unknown) => R): Promise<R | null> {
    const chosen = await this.fencing.publication(ctx.jobId);
    if (chosen === null) return null;
    await this.sayPublishedEarlier(ctx.jobId, chosen);
    await this.tidy(ctx.jobId, chosen.stage);
    return parse(chosen.result);
  }

  private sayPublishedEarlier(jobId: string, chosen: Publication): Promise<void> {
    return this.events.info(
      jobId,
      'published_earlier',
      `attempt ${chosen.attempt} (worker ${chosen.workerId}) had published its artifact set already; that one stays`,
      { attempt: chosen.attempt, workerId: chosen.workerId },
    );
  }

  /** Step 3: what no reader sees any more; a failure leaves it to the job's retention. */
  private async tidy(jobId: string, published: string): Promise<void> {
    try {
      await this.artifacts.pruneStages(jobId, published);
      await this.checkpoints.remove(jobId);
    } catch (e) {
      this.log.warn(`job ${jobId}: published; tidying its other objects failed (${(e as Error).message})`);
    }
  }
}
