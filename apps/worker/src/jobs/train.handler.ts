/**
 * Train jobs, parent side: resume from the job's checkpoint when there is one, run the training in
 * the engine, forward its progress to `job.updateProgress` and the job's event stream, write its
 * checkpoints and, at the end, the four artifacts; turn a stop into `cancelled` (cancel), a
 * release of the job back to the queue (shutdown), `timeout` (its wall-clock limit, checkpoint
 * kept) or nothing at all (`lost`: another worker holds the lock now). Checkpoints and artifacts
 * are written only while this attempt holds the job's lock (fencing.ts, publish.ts).
 */
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { WaitingError } from 'bullmq';
import {
  ARTIFACTS,
  DIVERGENCE_ROLLBACK,
  FencedWriteError,
  TrainResultSchema,
  type DivergenceRollback,
  type ProgressEvent,
  type TrainResult,
} from '@relu-lstm/jobs';
import { WORKER_CONFIG, type WorkerConfig } from '../config';
import { EngineClient } from '../engine/engine-client';
import type { RunMessage, TerminalMessage, TrainRequest } from '../engine/protocol';
import { CheckpointStore, type FoundCheckpoint } from './checkpoints';
import { SweepGate } from './sweep-gate';
import { LostLockError } from './fencing';
import { engineRunFailure } from './job-budget';
import { jobFailure } from './job-errors';
import { JobEvents } from './job-events';
import type { JobContext, JobHandler } from './job-handler';
import { LOSS_DIVERGED, lossBlowup } from './loss-check';
import { metricsCsv } from './metrics-csv';
import { ArtifactPublisher } from './publish';

/** Where an attempt starts: the checkpoint to resume from (if any) and what earlier attempts recorded. */
interface ResumePoint {
  checkpoint: FoundCheckpoint | null;
  /** Metric points of earlier attempts; cut at the step the engine resumes from once it says. */
  metrics: ProgressEvent[];
  /** Wall time of earlier attempts, so elapsedMs keeps counting. */
  elapsedBeforeMs: number;
}

@Injectable()
export class TrainHandler implements JobHandler<'train'> {
  readonly type = 'train' as const;
  private readonly log = new Logger('TrainHandler');

  constructor(
    @Inject(WORKER_CONFIG) private readonly config: WorkerConfig,
    private readonly publisher: ArtifactPublisher,
    private readonly engine: EngineClient,
    private readonly checkpoints: CheckpointStore,
    private readonly events: JobEvents,
    private readonly sweeps: SweepGate,
  ) {}

  async run(ctx: JobContext<'train'>): Promise<TrainResult> {
    const earlier = await this.publisher.earlier(ctx, (u) => TrainResultSchema.parse(u));
    if (earlier !== null) return earlier;
    const from = await this.resumePoint(ctx.jobId);
    const runId = `${ctx.jobId}:${ctx.attempt}:${randomBytes(4).toString('hex')}`;
    const messages = new TrainMessages(ctx, from.metrics, {
      events: this.events,
      checkpoints: this.checkpoints,
      log: this.log,
      onEpochEnd: (point) => this.medianStop(ctx, point),
    });
    this.stopEngineOnRequest(ctx, runId);
    const outcome = await this.runInEngine(ctx, this.trainRequest(ctx, runId, from), messages);
    switch (outcome.kind) {
      case 'trained':
        return this.publishTrained(ctx, outcome, messages);
      case 'stopped':
        return this.stopped(ctx, outcome);
      case 'failed':
        throw jobFailure(outcome.error);
      default:
        throw jobFailure({ code: 'internal', message: `unexpected engine reply '${outcome.kind}' to a train request` });
    }
  }

  private async resumePoint(jobId: string): Promise<ResumePoint> {
    const checkpoint = await this.checkpoints.find(jobId);
    const metrics = checkpoint?.metrics ?? [];
    const hint = checkpoint?.pointer?.step;
    const before = hint === undefined ? metrics : metrics.filter((p) => p.step <= hint);
    return { checkpoint, metrics, elapsedBeforeMs: before.length ? before[before.length - 1].elapsedMs : 0 };
  }

  /** A sweep trial worse than the median after the sweep's K epochs stops (sweep-gate.ts); it ends `cancelled`. */
  private async medianStop(ctx: JobContext<'train'>, point: ProgressEvent): Promise<void> {
    if (!(await this.sweeps.stopsAtEpoch(ctx.job, point))) return;
    await this.events.info(
      ctx.jobId,
      'median_stopped',
      `stopped by the sweep's median stopping rule after epoch ${point.epoch + 1}`,
      { epoch: point.epoch, loss: point.loss, valLoss: point.valLoss },
    );
    ctx.stop.request('cancel');
  }

  private trainRequest(ctx: JobContext<'train'>, runId: string, from: ResumePoint): TrainRequest {
    return {
      kind: 'train',
      runId,
      jobId: ctx.jobId,
      payload: ctx.payload,
      modelSource: ctx.modelSource,
      progressEvery: Math.max(ctx.payload.training.progressEvery, this.config.progressEvery),
      resumeFrom: from.checkpoint?.artifact ?? null,
      elapsedBeforeMs: from.elapsedBeforeMs,
      divergence: this.config.divergence,
    };
  }

  private stopEngineOnRequest(ctx: JobContext<'train'>, runId: string): void {
    ctx.stop.onStop((reason) => {
      this.engine.stop(runId, reason === 'shutdown' || reason === 'timeout');
      // A run that does not reach a batch boundary in time (one huge batch, a hung backend) is killed.
      if (reason === 'timeout' || reason === 'lost')
        setTimeout(() => this.engine.killRun(runId), this.config.shutdownGraceMs).unref();
      // A cancel is immediate: a run still building its model, loading data or in a long batch is killed.
      if (reason === 'cancel') setTimeout(() => this.engine.killRun(runId), this.config.cancelKillMs).unref();
    });
  }

  /** The engine's terminal message, once every side effect of the run's messages is done. */
  private async runInEngine(
    ctx: JobContext<'train'>,
    request: TrainRequest,
    messages: TrainMessages,
  ): Promise<TerminalMessage> {
    let outcome: TerminalMessage;
    try {
      outcome = await this.engine.run(request, (m) => messages.handle(m));
    } catch (e) {
      // The engine died (or was killed after the shutdown grace): the last periodic checkpoint stays.
      await messages.settled();
      return this.engineDied(ctx, e as Error);
    }
    await messages.settled();
    return outcome;
  }

  private async engineDied(ctx: JobContext<'train'>, e: Error): Promise<never> {
    if (ctx.stop.reason === 'shutdown')
      return this.release(ctx, `released: the worker is shutting down (${e.message})`, {});
    if (ctx.stop.reason === 'cancel')
      throw await this.cancelled(
        ctx,
        `cancelled; the engine did not stop within ${this.config.cancelKillMs} ms (CANCEL_KILL_MS) and was killed`,
        {},
      );
    if (ctx.stop.reason === 'timeout')
      throw this.timedOut(ctx, `the engine did not stop within ${this.config.shutdownGraceMs} ms and was killed`, {});
    if (ctx.stop.reason === 'lost') throw new LostLockError(ctx.jobId, 'the run was stopped');
    throw jobFailure(engineRunFailure(e));
  }

  /** Writes the four artifacts and returns the result; once per job, by the holder of its lock (publish.ts). */
  private async publishTrained(
    ctx: JobContext<'train'>,
    outcome: Extract<TerminalMessage, { kind: 'trained' }>,
    messages: TrainMessages,
  ): Promise<TrainResult> {
    const { summary, files } = outcome;
    const backend = this.engine.backend!;
    const result = TrainResultSchema.parse({
      epochs: summary.epochs,
      steps: summary.steps,
      finalLoss: summary.finalLoss,
      finalValLoss: summary.finalValLoss,
      samplesPerSec: summary.samplesPerSec,
      elapsedMs: Math.round(summary.elapsedMs),
      resumedFromEpoch: messages.resumedFromEpoch,
      backend: backend.backend,
      gpu: backend.gpu,
      artifacts: [ARTIFACTS.model, ARTIFACTS.state, ARTIFACTS.metrics, ARTIFACTS.config],
      diverged: await this.flagBlowup(ctx.jobId, messages.metrics, summary.finalLoss),
    });
    // The checkpoint goes with them (publish.ts).
    const artifactFiles = [
      [ARTIFACTS.model, files.model],
      [ARTIFACTS.state, files.state],
      [ARTIFACTS.metrics, metricsCsv(messages.metrics, ctx.labels)],
      [ARTIFACTS.config, JSON.stringify(this.configArtifact(ctx, files.resolved), null, 2)],
    ] as const;
    return this.publisher.publish(ctx, artifactFiles, result, (u) => TrainResultSchema.parse(u));
  }

  /** Whether the completed run's loss blew up (loss-check.ts); if so, says it in a warning event. */
  private async flagBlowup(jobId: string, metrics: ProgressEvent[], finalLoss: number | null): Promise<boolean> {
    const blowup = lossBlowup(metrics, finalLoss, this.config.divergedLossFactor);
    if (blowup) await this.events.info(jobId, LOSS_DIVERGED, blowup.message, { ...blowup }, 'warning');
    return blowup !== null;
  }

  /** `config.json`: the payload, the job's name and tags, the library's resolved configuration and where it ran. */
  private configArtifact(ctx: JobContext<'train'>, resolved: Record<string, unknown>) {
    return {
      jobId: ctx.jobId,
      type: 'train',
      name: ctx.labels.name ?? null,
      tags: ctx.labels.tags ?? {},
      model: ctx.payload.model,
      payload: ctx.payload,
      resolved,
      backend: this.engine.backend!,
      worker: { id: this.config.workerId, host: os.hostname(), pid: process.pid },
      attempt: ctx.attempt,
      writtenAt: new Date().toISOString(),
    };
  }

  /** The run stopped on request: released (shutdown), timed out, lost or cancelled. */
  private async stopped(
    ctx: JobContext<'train'>,
    outcome: Extract<TerminalMessage, { kind: 'stopped' }>,
  ): Promise<never> {
    const at = { epoch: outcome.epoch, step: outcome.step };
    // On shutdown the engine sent a checkpoint of the step it stopped at just before this message.
    if (ctx.stop.reason === 'shutdown')
      return this.release(ctx, `released at epoch ${at.epoch}, step ${at.step}: the worker is shutting down`, at);
    if (ctx.stop.reason === 'timeout') throw this.timedOut(ctx, `stopped at epoch ${at.epoch}, step ${at.step}`, at);
    if (ctx.stop.reason === 'lost') throw new LostLockError(ctx.jobId, `the run was stopped at step ${at.step}`);
    throw await this.cancelled(ctx, `cancelled at epoch ${at.epoch}, step ${at.step}`, at);
  }

  /**
   * Puts the job back in its queue without using up an attempt (BullMQ `moveToWait` + `WaitingError`),
   * so that another worker, or this one restarted, resumes it from its checkpoint at once instead of
   * waiting for the lock to lapse.
   */
  private async release(ctx: JobContext<'train'>, message: string, data: Record<string, unknown>): Promise<never> {
    await ctx.job.moveToWait(ctx.token);
    await this.events.info(ctx.jobId, 'released', message, data);
    throw new WaitingError();
  }

  /** A cancelled job is not retried: its checkpoint goes, and it fails with reason `cancelled`. */
  private async cancelled(ctx: JobContext<'train'>, message: string, details: Record<string, unknown>): Promise<Error> {
    await this.checkpoints.remove(ctx.jobId).catch(() => undefined);
    return jobFailure({ code: 'cancelled', message, details });
  }

  /** Over its wall-clock limit: fails for good (`timeout`), keeping the checkpoint of where it stopped. */
  private timedOut(ctx: JobContext<'train'>, how: string, details: Record<string, unknown>): Error {
    return jobFailure({
      code: 'timeout',
      message: `ran longer than its limit of ${ctx.timeoutMs} ms (JOB_TIMEOUT_TRAIN_MS): ${how}; its checkpoint is kept`,
      details: { ...details, limitMs: ctx.timeoutMs },
    });
  }
}

/**
 * The side effects of one run's messages (events, progress, checkpoints), done one after the other in
 * the order they came, and the metric points of the job so far (for `metrics.csv`).
 */
class TrainMessages {
  resumedFromEpoch: number | null = null;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly ctx: JobContext<'train'>,
    public metrics: ProgressEvent[],
    private readonly deps: {
      events: JobEvents;
      checkpoints: CheckpointStore;
      log: Logger;
      onEpochEnd: (point: ProgressEvent) => Promise<void>;
    },
  ) {}

  handle(m: RunMessage): void {
    switch (m.kind) {
      case 'started':
        return this.started(m);
      case 'progress':
        return this.progress(m.point);
      case 'checkpoint':
        return this.checkpoint(m);
      case 'rollback':
        return this.rollback(m.rollback);
      case 'log':
        return this.then('log event', () =>
          this.deps.events.info(this.ctx.jobId, m.code ?? 'engine', m.message, m.data, m.level),
        );
    }
  }

  /** Resolves once every side effect queued so far is done (a failed one is logged, not thrown). */
  settled(): Promise<void> {
    return this.chain;
  }

  private then(what: string, fn: () => Promise<unknown>): void {
    // A worker that lost the lock (paused past it) drops what its engine still sends.
    this.chain = this.chain
      .then(async () => ((await this.ctx.lock.held()) ? fn() : undefined))
      .then(
        () => undefined,
        (e) => this.deps.log.warn(`job ${this.ctx.jobId}: ${what} failed: ${(e as Error).message}`),
      );
  }

  private started(m: Extract<RunMessage, { kind: 'started' }>): void {
    const from = m.resumedFrom;
    if (!from) {
      this.metrics = [];
      return;
    }
    const attempt = this.ctx.attempt;
    this.resumedFromEpoch = from.epoch;
    this.metrics = this.metrics.filter((p) => p.step <= from.step);
    const batch = from.stepInEpoch ? ` at its batch ${from.stepInEpoch}` : '';
    this.then('resumed event', () =>
      this.deps.events.info(
        this.ctx.jobId,
        'resumed',
        `resumed from the checkpoint at step ${from.step}: continuing with epoch ${from.epoch}${batch} (attempt ${attempt})`,
        { ...from, attempt },
      ),
    );
  }

  private progress(point: ProgressEvent): void {
    this.metrics.push(point);
    this.then('progress', () =>
      Promise.all([
        this.ctx.job.updateProgress(point),
        this.deps.events.append(this.ctx.jobId, { type: 'metric', at: Date.now(), ...point }),
      ]),
    );
    if (point.epochEnd) this.then('epoch end', () => this.deps.onEpochEnd(point));
  }

  private checkpoint(m: Extract<RunMessage, { kind: 'checkpoint' }>): void {
    const { ctx } = this;
    const upTo = this.metrics.filter((p) => p.step <= m.step);
    const batch = m.stepInEpoch ? ` at its batch ${m.stepInEpoch}` : '';
    this.then('checkpoint', async () => {
      try {
        await this.deps.checkpoints.save(
          ctx.jobId,
          m.bytes,
          upTo,
          { epoch: m.epoch, step: m.step, attempt: ctx.attempt },
          ctx,
        );
      } catch (e) {
        if (e instanceof FencedWriteError) ctx.stop.request('lost');
        throw e;
      }
      await this.deps.events.info(
        ctx.jobId,
        'checkpoint',
        `checkpoint at step ${m.step}: a resume continues with epoch ${m.epoch}${batch}`,
        { epoch: m.epoch, step: m.step, stepInEpoch: m.stepInEpoch },
      );
    });
  }

  /** Divergence guard: the points past the state rolled back to are replaced by the retry's. */
  private rollback(r: DivergenceRollback): void {
    this.metrics = this.metrics.filter((p) => p.step <= r.to.step);
    const message = `training diverged at epoch ${r.epoch}, step ${r.step} (${r.quantity} ${r.value}): rolled back to step ${r.to.step} (${r.to.source}) with learning rate ${r.learningRate} (rollback ${r.retry} of ${r.retries})`;
    this.then('rollback event', () =>
      this.deps.events.info(this.ctx.jobId, DIVERGENCE_ROLLBACK, message, { ...r }, 'warning'),
    );
  }
}
